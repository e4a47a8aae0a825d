/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer: the token decoder and verifier.  The first byte picks a mode:
 *
 *   0  the rest is a token: hyb_token_verify and hyb_token_inspect on it
 *   1  the rest is `HEADER\nCLAIMS` (JSON texts): signed here with the fixed
 *      issuer key into a block 0, then verified, so mutations reach the
 *      header template and the claim checks behind the signature
 *   2  the rest is the CLAIMS of an attenuation block, signed here with the
 *      fixed holder key and appended to a fixed valid block 0: the chain,
 *      prv, dlg and the capability intersection
 *
 * Every text is also offered as a revocation feed entry (mode 1 with a header
 * {"alg":"ES256","typ":"hyb-rev+jwt","kid":...} reaches the entry's claim
 * checks): it verifies or is refused with the one public error, and a fresh
 * feed applies it only when its seq is 1 (else reports a gap).
 *
 * Properties: no crash, no leak; a verified result prints as JSON; every
 * effective capability grants its own pattern and actions; a child block
 * never yields a capability outside block 0's rights.  Seeds: token-seeds.py.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hybrid/token.h"
#include "token/crypto.h"
#include "token/token-internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_NOW 1800000000

/* Fixed keys, so the seeds (token-seeds.py reads these PEMs from this file) stay valid. */
static const char issuer_pem[] =
        "-----BEGIN PRIVATE KEY-----\n"
        "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgYZkIozTwpVTRZfxe\n"
        "WS/I5h2RPrli+gbRjxke2a30X2KhRANCAASOOJ76qluu5y8IIHqrJP3VWo/tDRXd\n"
        "nVLrZB3uyuOWpGYZyKQzVif0xofTY0ApwnPm4FgZf/US1pRValjNT7Hf\n"
        "-----END PRIVATE KEY-----\n";
static const char holder_pem[] =
        "-----BEGIN PRIVATE KEY-----\n"
        "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgmlzl9NGhry+hbWPs\n"
        "1ZK8Cy+RJmekjsgaG8+2g+EjESShRANCAARXLHLQyoR1mCD/buoZ4mMVJ7f29DWR\n"
        "Uz8M0mesIxywjlj5FPSCTw1WKGJBIhDgreZnVEX/wU81UyOBcRsBUvCm\n"
        "-----END PRIVATE KEY-----\n";

static hyb_key *issuer, *holder;
static hyb_token_trust *trust;
static char *base_token; /* block 0 for `hub`, holder `holder`, dlg 3 */

static void init(void)
{
        hyb_token_issue_opts o;
        const char *aud[] = {"hub-a"};
        hyb_token_cap caps[] = {
                {"/home/#", HYB_TOKEN_ACT_READ | HYB_TOKEN_ACT_SUB | HYB_TOKEN_ACT_WRITE},
                {"bus://hub/+/+/#", HYB_TOKEN_ACT_CALL},
        };

        if (hyb_key_load_memory(issuer_pem, strlen(issuer_pem), &issuer, NULL) < 0 ||
            hyb_key_load_memory(holder_pem, strlen(holder_pem), &holder, NULL) < 0 ||
            hyb_token_trust_new(&trust) < 0 || hyb_token_trust_add(trust, "hub", issuer) < 0)
                abort();
        hyb_token_issue_opts_init(&o);
        o.iss = "hub";
        o.sub = "fuzz";
        o.aud = aud;
        o.n_aud = 1;
        o.holder = holder;
        o.caps = caps;
        o.n_caps = 2;
        o.now = FUZZ_NOW;
        o.dlg = 3;
        if (hyb_token_issue(issuer, &o, &base_token, NULL) < 0)
                abort();
}

static char *b64(const void *p, size_t n)
{
        char *s = NULL;

        if (b64u_encode(p, n, &s) < 0)
                abort();
        return s;
}

/* "b64(hdr).b64(claims).b64(sig by key)", or NULL when it would not fit a token anyway. */
static char *sign(const hyb_key *key, const char *hdr, size_t hl, const char *claims, size_t cl)
{
        char *h = b64(hdr, hl), *c = b64(claims, cl), *s, *out = NULL;
        uint8_t sig[64];

        if (asprintf(&out, "%s.%s", h, c) < 0)
                abort();
        if (hyb_key_sign(key, out, strlen(out), sig) < 0)
                abort();
        s = b64(sig, sizeof sig);
        free(out);
        if (asprintf(&out, "%s.%s.%s", h, c, s) < 0)
                abort();
        free(h);
        free(c);
        free(s);
        return out;
}

static void check_result(hyb_token_result *r)
{
        hyb_furi *f = NULL;
        char *json = NULL;

        if (hyb_token_result_to_json(r, &json) < 0)
                abort();
        hyb_free(json);
        for (size_t i = 0; i < hyb_token_result_get_n_caps(r); i++) {
                const char *res;
                unsigned acts;

                if (hyb_token_result_get_cap(r, i, &res, &acts) < 0 ||
                    hyb_furi_parse(res, (size_t)-1, NULL, &f, NULL) < 0 ||
                    !hyb_token_allowed(r, f, acts)) {
                        fprintf(stderr, "capability %s does not grant itself\n", res);
                        abort();
                }
                hyb_furi_unref(f);
                /* never beyond block 0 (/home/# read/sub/write, bus://hub/+/+/# call) */
                if (hyb_token_result_get_n_blocks(r) > 1 &&
                    ((acts & ~(unsigned)(HYB_TOKEN_ACT_READ | HYB_TOKEN_ACT_SUB |
                                         HYB_TOKEN_ACT_WRITE | HYB_TOKEN_ACT_CALL)) ||
                     (strncmp(res, "/home/", 6) != 0 && strcmp(res, "/home") != 0 &&
                      strncmp(res, "bus://hub/", 10) != 0))) {
                        fprintf(stderr, "attenuation widened the rights: %s %x\n", res, acts);
                        abort();
                }
        }
}

static void feed_entry(const char *text)
{
        hyb_token_feed *feed = NULL;
        char *json = NULL;
        uint64_t seq = 0;
        int rc = hyb_token_feed_entry_verify(text, trust, &json, NULL);

        if (rc != 0 && rc != HYB_E_UNAUTHORIZED && rc != -ENOMEM) {
                fprintf(stderr, "entry refused with %d, not the one public error\n", rc);
                abort();
        }
        hyb_free(json);
        if (hyb_token_feed_new(trust, &feed) < 0)
                abort();
        rc = hyb_token_feed_apply(feed, text, &seq, NULL);
        if ((rc == HYB_TOKEN_FEED_APPLIED && seq != 1) || (rc == HYB_TOKEN_FEED_GAP && seq <= 1) ||
            rc == HYB_TOKEN_FEED_OLD || (rc < 0 && rc != HYB_E_UNAUTHORIZED && rc != -ENOMEM) ||
            hyb_token_feed_get_seq(feed) != (rc == HYB_TOKEN_FEED_APPLIED ? 1u : 0u)) {
                fprintf(stderr, "feed apply gave %d for seq %llu\n", rc, (unsigned long long)seq);
                abort();
        }
        hyb_token_feed_unref(feed);
}

static void verify(const char *tok)
{
        hyb_token_verify_opts o;
        hyb_token_result *r = NULL;
        char *json = NULL;
        int rc;

        hyb_token_verify_opts_init(&o);
        o.audience = "hub-a";
        o.now = FUZZ_NOW + 10;
        rc = hyb_token_verify(tok, trust, &o, &r, NULL);
        if (rc == 0) {
                check_result(r);
                hyb_token_result_unref(r);
        } else if (rc != HYB_E_UNAUTHORIZED && rc != -ENOMEM) {
                fprintf(stderr, "refused with %d, not the one public error\n", rc);
                abort();
        }
        if (hyb_token_inspect(tok, &json, NULL) == 0)
                hyb_free(json);
        feed_entry(tok);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        char *text, *tok = NULL, *nl;

        if (!issuer)
                init();
        if (size < 1 || size > 8192)
                return 0;
        text = malloc(size);
        if (!text)
                return 0;
        memcpy(text, data + 1, size - 1);
        text[size - 1] = 0;
        switch (data[0] % 3) {
        case 0:
                verify(text);
                break;
        case 1:
                nl = memchr(text, '\n', size - 1);
                if (nl) {
                        tok = sign(issuer, text, (size_t)(nl - text), nl + 1,
                                   size - 1 - (size_t)(nl + 1 - text));
                        verify(tok);
                }
                break;
        default: {
                char *blk = sign(holder, "{\"alg\":\"ES256\",\"typ\":\"hyb-att+jwt\"}", 35, text,
                                 size - 1);

                if (asprintf(&tok, "%s~%s", base_token, blk) < 0)
                        abort();
                free(blk);
                verify(tok);
                break;
        }
        }
        free(tok);
        free(text);
        return 0;
}
