/* SPDX-License-Identifier: MIT */
/*
 * The connect handshake: a challenge with a fresh 32-byte getrandom() nonce,
 * one AUTH answer, checked against the local uid policy.  Token + proof
 * (a later release: doc/protocol.md) have their fields reserved and are refused with 501 for now.
 */
#include <jansson.h>
#include <stdio.h>
#include <sys/random.h>

#include "broker-internal.h"
#include "bus/names.h"
#include "common/util.h"

int auth_challenge(bconn *c)
{
        uint8_t nonce[32];
        char hex[65], body[256];
        size_t got = 0;
        wire_hdr h = { .type = WIRE_CHALLENGE };

        while (got < sizeof nonce) {
                ssize_t n = getrandom(nonce + got, sizeof nonce - got, 0);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                got += (size_t)n;
        }
        for (size_t i = 0; i < sizeof nonce; i++)
                snprintf(hex + 2 * i, 3, "%02x", nonce[i]);
        int n = snprintf(body, sizeof body,
                         "{\"protocol\":\"%s\",\"version\":%d,\"nonce\":\"%s\",\"maxBody\":%zu,\"host\":\"%s\"}",
                         WIRE_PROTOCOL, WIRE_VERSION, hex, c->b->c->max_body,
                         c->b->c->host ? c->b->c->host : "localhost");
        return bconn_send(c, &h, NULL, 0, NULL, 0, NULL, 0, body, (size_t)n);
}

static void auth_fail(bconn *c, int status, const char *msg)
{
        wire_hdr h = { .type = WIRE_AUTH_RESULT, .status = (uint16_t)status };
        broker_log(c->b, HYB_LOG_INFO, "auth refused for uid %u pid %d: %d %s", (unsigned)c->uid,
                   (int)c->pid, status, msg);
        bconn_send(c, &h, NULL, 0, NULL, 0, msg, strlen(msg), NULL, 0);
        bconn_close(c, NULL);
}

void auth_handle(bconn *c, const wire_hdr *wh, const uint8_t *body)
{
        hyb_broker *b = c->b;
        const char *proto = NULL, *app = NULL, *runner = NULL;
        json_t *j, *token = NULL;
        int version = 0;
        char name[WIRE_ENDPOINT_MAX + 1], resp[WIRE_ENDPOINT_MAX + 64];

        if (!body || (wh->flags & WIRE_F_BINARY)) {
                auth_fail(c, 400, "auth body must be JSON");
                return;
        }
        /* JSON_ALLOW_NUL: an app or runner with "\u0000" is a bad name (406), checked below. */
        j = json_loadb((const char *)body, wh->body_len, JSON_ALLOW_NUL, NULL);
        if (!j || json_unpack(j, "{s:s, s:i, s?s, s?s, s?o}", "protocol", &proto, "version", &version,
                              "app", &app, "runner", &runner, "token", &token) < 0) {
                json_decref(j);
                auth_fail(c, 400, "malformed auth packet");
                return;
        }
        if (strcmp(proto, WIRE_PROTOCOL) != 0 || version != WIRE_VERSION ||
            json_string_length(json_object_get(j, "protocol")) != strlen(WIRE_PROTOCOL)) {
                auth_fail(c, 426, "unsupported protocol or version");
                goto out;
        }
        if (token && !json_is_null(token)) {
                auth_fail(c, 501, "token authentication is not implemented yet");
                goto out;
        }
        if (!app || !runner || strlen(app) != json_string_length(json_object_get(j, "app")) ||
            strlen(runner) != json_string_length(json_object_get(j, "runner")) ||
            bus_name_check_app(app, strlen(app), NULL) < 0 ||
            bus_name_check_ident(runner, strlen(runner), NULL) < 0) {
                auth_fail(c, 406, "bad app or runner name");
                goto out;
        }
        if (bus_name_equal(app, strlen(app), BUS_APP_SELF, strlen(BUS_APP_SELF)) ||
            bus_name_equal(runner, strlen(runner), BUS_RUNNER_BUILTIN, strlen(BUS_RUNNER_BUILTIN))) {
                auth_fail(c, 406, "reserved app or runner name");
                goto out;
        }
        if (!broker_config_may_claim(b->c, c->uid, app, strlen(app))) {
                auth_fail(c, 403, "this uid may not claim the app name");
                goto out;
        }
        snprintf(name, sizeof name, "@localhost/%s/%s", app, runner);
        if (broker_lookup(b, name, strlen(name))) {
                auth_fail(c, 409, "endpoint name already connected");
                goto out;
        }
        if (b->n_endpoints >= b->c->max_endpoints) {
                auth_fail(c, 503, "too many endpoints");
                goto out;
        }
        c->name = strdup(name);
        c->app = strdup(app);
        if (!c->name || !c->app) {
                auth_fail(c, 500, "out of memory");
                goto out;
        }
        c->name_len = strlen(name);
        c->state = BCONN_READY;
        quota_unauth_end(c);
        event_del(c->timer);
        broker_ep_insert(b, c);
        b->n_endpoints++;
        wire_hdr h = { .type = WIRE_AUTH_RESULT, .status = 200 };
        int n = snprintf(resp, sizeof resp, "{\"endpoint\":\"%s\",\"maxBody\":%zu}", name, b->c->max_body);
        bconn_send(c, &h, NULL, 0, NULL, 0, NULL, 0, resp, (size_t)n);
        broker_log(b, HYB_LOG_DEBUG, "%s connected (uid %u pid %d)", name, (unsigned)c->uid, (int)c->pid);
        snprintf(resp, sizeof resp, "{\"endpointName\":\"%s\"}", name);
        events_builtin(b, "NewEndpoint", resp);
out:
        json_decref(j);
}
