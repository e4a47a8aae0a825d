/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the daemon's auth handler (lib/broker/auth.c): every input
 * gets a fresh in-process broker with auth.tokens accept (audience fuzz-hub, one
 * trusted issuer) and one raw client that reads the CHALLENGE and sends one AUTH
 * built from the input:
 *
 *   byte 0 bit 0 = 1: the rest is the AUTH body verbatim (any bytes).
 *   byte 0 bit 0 = 0: a structured AUTH {protocol, version, app, runner, token, nonce,
 *                     proof}; byte 1 flags:
 *                       bit 0  the proof is correct (signed by the holder key over the
 *                              documented transcript with this connection's nonce)
 *                       bit 1  ... but bound to another uid
 *                       bit 2  app org.example.app (the token covers it) instead of the CLI's
 *                       bit 3  the token is the harness's valid token (issued at start-up by
 *                              the trusted issuer, one attenuation block) with the edits of
 *                              the rest applied: 3-byte records (offset lo, hi, xor; xor 0
 *                              truncates there); else the rest is the token text
 *                       bit 4  the proof is signed by another key
 *                       bit 5  the token is announced first (AUTH {token, early: true},
 *                              doc/protocol.md "Handshake" step 2a): this token, or with
 *                              bit 6 the harness's valid token (another one when edited)
 *
 * Checks: the broker only sends well-formed frames; a refusal of credentials is
 * AUTH_RESULT 401 with the one text "unauthorized"; whatever happened, a bystander
 * then logs in (no token: accept keeps the uid policy) and the broker frees
 * everything (LeakSanitizer).  Seeds: tests/fuzz/corpus/auth/ (see the header of
 * each mode above; made by tests/fuzz/auth-seeds.py).  The broker, sockets and pump:
 * broker-harness.c.
 */
#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "broker-harness.h"
#include "hybrid/token.h"
#include "token/proof.h"

#define RX_MAX (1u << 16)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct client {
        fz_client fz;
        int auth_status; /* AUTH_RESULT status, 0 before */
        bool uniform;    /* a 401 said only "unauthorized" */
        uint8_t nonce[TOKEN_NONCE_LEN];
        bool have_nonce;
} client;

static char yaml[512];
static hyb_key *holder, *other;
static char *good_token;

static void setup_once(void)
{
        hyb_key *iss = NULL, *guest = NULL;
        hyb_token_issue_opts io;
        hyb_token_attenuate_opts ao;
        hyb_token_cap caps[] = {
                {"/sensors/#", HYB_TOKEN_ACT_READ},
                {"bus://localhost/org.example.app/+", HYB_TOKEN_ACT_REG | HYB_TOKEN_ACT_CALL},
        };
        const char *aud[] = {"fuzz-hub"};
        char pub[sizeof fz_dir + 16];
        char *t1 = NULL;

        if (!fz_setup_once("auth"))
                return;
        snprintf(pub, sizeof pub, "%s/iss.pub", fz_dir);
        if (hyb_key_generate(&iss) < 0 || hyb_key_generate(&holder) < 0 ||
            hyb_key_generate(&other) < 0 || hyb_key_generate(&guest) < 0 ||
            hyb_key_save_public(iss, pub, NULL) < 0)
                abort();
        hyb_token_issue_opts_init(&io);
        io.iss = "fuzz";
        io.sub = "fuzzer";
        io.aud = aud;
        io.n_aud = 1;
        io.holder = holder;
        io.caps = caps;
        io.n_caps = 2;
        io.dlg = 1;
        if (hyb_token_issue(iss, &io, &t1, NULL) < 0)
                abort();
        /* one attenuation block, to the same holder: the proof is by `holder` either way */
        hyb_token_attenuate_opts_init(&ao);
        ao.holder = holder;
        if (hyb_token_attenuate(t1, holder, &ao, &good_token, NULL) < 0)
                abort();
        hyb_free(t1);
        hyb_key_unref(iss);
        hyb_key_unref(guest);
        snprintf(yaml, sizeof yaml,
                 "auth:\n  tokens: accept\n  audience: fuzz-hub\n  issuers:\n    fuzz: %s\n", pub);
}

static void on_frame(fz_client *fc, const wire_packet *p)
{
        client *c = (client *)fc;

        if (p->h.type == WIRE_CHALLENGE && !c->have_nonce) {
                json_t *j = json_loadb((const char *)p->body, p->h.body_len, 0, NULL);
                const char *hex = json_string_value(json_object_get(j, "nonce"));
                assert(hex && token_nonce_from_hex(hex, strlen(hex), c->nonce) == 0);
                c->have_nonce = true;
                json_decref(j);
        }
        if (p->h.type == WIRE_AUTH_RESULT) {
                c->auth_status = p->h.status;
                c->uniform = p->h.member_len == strlen("unauthorized") &&
                             memcmp(p->member, "unauthorized", p->h.member_len) == 0;
        }
}

static void client_connect(client *c)
{
        memset(c, 0, sizeof *c);
        fz_client_connect(&c->fz, RX_MAX, on_frame);
}

static void client_send(client *c, const void *body, size_t len)
{
        wire_hdr h = {.type = WIRE_AUTH};

        fz_client_send(&c->fz, &h, NULL, 0, NULL, 0, body, len);
}

/* The structured AUTH body of the input (see the top); NULL when it cannot be built. */
static char *structured(const client *c, const uint8_t *data, size_t size, char **ret_token)
{
        uint8_t flags = size > 0 ? data[0] : 0, nc[TOKEN_NONCE_LEN], t[32];
        char nc_hex[2 * TOKEN_NONCE_LEN + 1], proof[TOKEN_PROOF_B64_LEN + 1],
                binding[TOKEN_BINDING_MAX];
        char *token, *out = NULL;
        size_t tlen;
        json_t *j;

        data++;
        size = size > 0 ? size - 1 : 0;
        if (flags & 8) {
                token = strdup(good_token);
                if (!token)
                        return NULL;
                tlen = strlen(token);
                for (size_t i = 0; i + 3 <= size; i += 3) {
                        size_t off = ((size_t)data[i] | (size_t)data[i + 1] << 8) % (tlen + 1);
                        if (data[i + 2] == 0 || off == tlen) {
                                token[off] = '\0';
                                tlen = off;
                        } else {
                                token[off] ^= (char)data[i + 2];
                                if (token[off] == '\0')
                                        token[off] = '.';
                        }
                }
        } else {
                token = strndup((const char *)data, size);
                if (!token)
                        return NULL;
                tlen = strlen(token);
        }
        memset(nc, 0x5a, sizeof nc);
        token_nonce_to_hex(nc, nc_hex);
        token_binding_unix((flags & 2) ? geteuid() + 1 : geteuid(), binding);
        memset(proof, 'A', TOKEN_PROOF_B64_LEN);
        proof[TOKEN_PROOF_B64_LEN] = '\0';
        if ((flags & 1) && c->have_nonce &&
            token_proof_transcript("fuzz-hub", c->nonce, nc, token, tlen, binding, t) == 0)
                (void)token_proof_sign((flags & 16) ? other : holder, t, proof);
        j = json_pack("{s:s, s:i, s:s, s:s, s:s, s:s, s:s}", "protocol", WIRE_PROTOCOL, "version",
                      WIRE_VERSION, "app", (flags & 4) ? "org.example.app" : "org.hybridos.cli",
                      "runner", "f", "token", token, "nonce", nc_hex, "proof", proof);
        if (j)
                out = json_dumps(j, JSON_COMPACT);
        json_decref(j);
        *ret_token = token;
        return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        hyb_broker_config *cfg = NULL;
        hyb_broker *b;
        static client cl[2];
        char *body = NULL;

        setup_once();
        if (size < 1 || size > 16384)
                return 0;
        if (hyb_broker_config_new(&cfg) < 0 ||
            hyb_broker_config_load_string(cfg, yaml, strlen(yaml), NULL) < 0)
                abort();
        b = fz_broker_start(cfg);
        client_connect(&cl[0]);
        fz_pump();
        assert(cl[0].have_nonce);
        if (data[0] & 1) {
                client_send(&cl[0], data + 1, size - 1);
        } else {
                uint8_t flags = size > 1 ? data[1] : 0;
                char *token = NULL;

                body = structured(&cl[0], data + 1, size - 1, &token);
                if (body && (flags & 32)) {
                        json_t *a = json_pack("{s:s, s:i, s:s, s:b}", "protocol", WIRE_PROTOCOL,
                                              "version", WIRE_VERSION, "token",
                                              (flags & 64) ? good_token : token, "early", 1);
                        char *text = a ? json_dumps(a, JSON_COMPACT) : NULL;

                        json_decref(a);
                        if (text)
                                client_send(&cl[0], text, strlen(text));
                        free(text);
                }
                free(token);
                if (body)
                        client_send(&cl[0], body, strlen(body));
        }
        fz_pump();
        /* a refusal for credentials is the one uniform 401 */
        if (cl[0].auth_status == 401)
                assert(cl[0].uniform);
        /* the broker keeps serving: a bystander logs in by the uid policy */
        client_connect(&cl[1]);
        fz_pump();
        static const char login[] =
                "{\"protocol\":\"HYBRID\",\"version\":1,\"app\":\"org.fuzz.x\",\"runner\":\"by\"}";
        client_send(&cl[1], login, strlen(login));
        fz_pump();
        assert(cl[1].auth_status == 200);
        free(body);
        fz_finish(b, cfg);
        return 0;
}
