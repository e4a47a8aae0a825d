/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for what the WebSocket listener (lib/edge/ws.c) checks itself; wslay
 * does the framing.  The first byte picks the path, the rest is its input.
 *   0  an upgrade request's method and headers, the fields separated by '\n' (is-GET
 *      flag, Upgrade, Connection, Sec-WebSocket-Version, Sec-WebSocket-Key,
 *      Sec-WebSocket-Protocol; a missing field is an absent header): on success the
 *      version is "13", the key 24 characters, the accept value 28 characters of base64,
 *      the subprotocol offered; on a refusal the status is 400 or 426 with a message
 *   1  a byte stream from a client through a wslay server context (masking required,
 *      fragments reassembled, messages bounded) to the frame -> packet check: every
 *      message accepted as a packet holds exactly one frame that wire_parse reads whole,
 *      within the bounds
 * Any violation aborts.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <wslay/wslay.h>

#include "edge/edge-internal.h"
#include "edge/tls.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_BODY 4096u
#define MAX_FRAME (MAX_BODY + WIRE_HDR_SIZE + WIRE_NAMES_MAX)

static void fail(const char *what)
{
        fprintf(stderr, "fuzz_ws: %s\n", what);
        abort();
}

static void upgrade(const uint8_t *data, size_t size)
{
        char *text = malloc(size + 1), *f[6] = { 0 }, *p;
        char accept[EDGE_WS_ACCEPT_SIZE];
        const char *header = NULL;
        hyb_error e;
        size_t n = 0;
        int st;

        if (!text)
                return;
        memcpy(text, data, size);
        text[size] = '\0';
        for (p = text; n < 6; n++) {
                char *nl = strchr(p, '\n');

                f[n] = p;
                if (!nl)
                        break;
                *nl = '\0';
                p = nl + 1;
        }
        hyb_error_clear(&e);
        st = edge_ws_check_upgrade(f[0] && f[0][0] == 'G', f[1], f[2], f[3], f[4], f[5], accept,
                                   &header, &e);
        if (st == 0) {
                if (!f[3] || strcmp(f[3], "13") != 0)
                        fail("accepted another version than 13");
                if (!f[4] || strlen(f[4]) != 24)
                        fail("accepted a key that is not 24 characters");
                if (strlen(accept) != 28 || accept[27] != '=')
                        fail("an accept value that is not the base64 of 20 bytes");
                if (!f[5] || !strstr(f[5], EDGE_WS_SUBPROTOCOL))
                        fail("accepted without the subprotocol");
        } else if ((st != 400 && st != 426) || !e.message[0] || (st == 426 && !header)) {
                fail("a refusal without its status, message or header");
        }
        free(text);
}

typedef struct feed {
        const uint8_t *data;
        size_t size, pos;
        uint64_t announced;
} feed;

static ssize_t feed_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
                         void *ud)
{
        feed *fd = ud;
        size_t n = fd->size - fd->pos;

        (void)flags;
        if (n == 0) {
                wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
                return -1;
        }
        /* in odd-sized pieces, as a network gives them */
        if (n > len)
                n = len;
        if (n > 1 + (fd->pos % 7) * 13)
                n = 1 + (fd->pos % 7) * 13;
        memcpy(buf, fd->data + fd->pos, n);
        fd->pos += n;
        return (ssize_t)n;
}

static ssize_t feed_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
                         void *ud)
{
        (void)ctx;
        (void)data;
        (void)flags;
        (void)ud;
        return (ssize_t)len;
}

static void feed_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg,
                     void *ud)
{
        wire_packet w;
        size_t used = 0;

        (void)ctx;
        (void)ud;
        if (arg->opcode != WSLAY_BINARY_FRAME)
                return;
        if (arg->msg_length > MAX_FRAME)
                fail("a message over the bound was delivered");
        if (edge_ws_check_packet(arg->msg, arg->msg_length, MAX_BODY) == 0) {
                if (wire_parse(arg->msg, arg->msg_length, MAX_BODY, &w, &used) != 1 ||
                    used != arg->msg_length || wire_frame_len(&w.h) != arg->msg_length ||
                    w.h.body_len > MAX_BODY)
                        fail("a message accepted that is not exactly one packet");
        }
}

static void frames(const uint8_t *data, size_t size)
{
        static const struct wslay_event_callbacks cbs = {
                .recv_callback = feed_recv,
                .send_callback = feed_send,
                .on_msg_recv_callback = feed_msg,
        };
        wslay_event_context_ptr ctx;
        feed fd = { .data = data, .size = size };

        if (wslay_event_context_server_init(&ctx, &cbs, &fd) != 0)
                return;
        wslay_event_config_set_max_recv_msg_length(ctx, MAX_FRAME);
        while (fd.pos < fd.size && wslay_event_want_read(ctx)) {
                size_t before = fd.pos;

                if (wslay_event_recv(ctx) != 0 || fd.pos == before)
                        break;
                if (wslay_event_want_write(ctx))
                        wslay_event_send(ctx);
        }
        wslay_event_context_free(ctx);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static int checked;

        if (!checked) {
                /* RFC 6455 section 1.3's example */
                char accept[EDGE_WS_ACCEPT_SIZE];

                if (edge_tls_ws_accept("dGhlIHNhbXBsZSBub25jZQ==", 24, accept) != 0 ||
                    strcmp(accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") != 0)
                        fail("the accept value of RFC 6455's example");
                checked = 1;
        }
        if (size < 1)
                return 0;
        if (data[0] % 2 == 0)
                upgrade(data + 1, size - 1);
        else
                frames(data + 1, size - 1);
        return 0;
}
