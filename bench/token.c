/* SPDX-License-Identifier: MIT */
/*
 * bench-token: the costs of tokens in the library, beside the bare operations they
 * are built on, measured in the same run:
 *
 *   verify, 1 and 3 blocks    hyb_token_verify  vs  the ES256 verifications alone
 *   check, 10 and 100 caps    hyb_token_allowed vs  a plain hyb_furi_match loop over
 *                             the same patterns (the store ACL's shape)
 *
 * The handshake and the round trips through hybridd are not here: they need the
 * daemon side of tokens.  Usage: bench-token [--runs N]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hybrid/hybrid.h>

#include "bench-util.h"

static int runs = 5;

/* sizes of `pats` below: up to 4 x 25 effective capabilities */

static void die(const char *what, int r, const hyb_error *e)
{
        fprintf(stderr, "bench-token: %s: %s %s\n", what, hyb_strerror(r), e ? e->message : "");
        exit(1);
}

/* A token whose effective rights are n_wide x n_narrow capabilities, of `blocks` blocks. */
static char *make_token(hyb_key *issuer, hyb_key **holders, int blocks, size_t n_wide,
                        size_t n_narrow, char narrow_names[][64])
{
        static const unsigned acts[] = {HYB_TOKEN_ACT_READ, HYB_TOKEN_ACT_SUB, HYB_TOKEN_ACT_WRITE,
                                        HYB_TOKEN_ACT_CALL};
        hyb_token_cap wide[4], narrow[32];
        const char *aud[] = {"hub-a"};
        hyb_token_issue_opts o;
        hyb_token_attenuate_opts a;
        hyb_error e;
        char *tok = NULL, *next = NULL;
        int r;

        for (size_t i = 0; i < n_wide; i++)
                wide[i] = (hyb_token_cap){"#", acts[i]};
        for (size_t i = 0; i < n_narrow; i++) {
                snprintf(narrow_names[i], 64, "/site/b%02zu/+/temp", i);
                narrow[i] = (hyb_token_cap){narrow_names[i],
                                            HYB_TOKEN_ACT_READ | HYB_TOKEN_ACT_SUB |
                                                    HYB_TOKEN_ACT_WRITE | HYB_TOKEN_ACT_CALL};
        }
        hyb_token_issue_opts_init(&o);
        o.iss = "hub";
        o.sub = "bench";
        o.aud = aud;
        o.n_aud = 1;
        o.holder = holders[0];
        o.caps = wide;
        o.n_caps = n_wide;
        o.dlg = 3;
        if ((r = hyb_token_issue(issuer, &o, &tok, &e)) < 0)
                die("issue", r, &e);
        for (int b = 1; b < blocks; b++) {
                hyb_token_attenuate_opts_init(&a);
                a.holder = holders[b];
                /* the first attenuation narrows to the capabilities; later ones keep them */
                a.caps = b == 1 ? narrow : NULL;
                a.n_caps = b == 1 ? n_narrow : 0;
                if ((r = hyb_token_attenuate(tok, holders[b - 1], &a, &next, &e)) < 0)
                        die("attenuate", r, &e);
                hyb_free(tok);
                tok = next;
        }
        return tok;
}

static double median_of(double *v)
{
        return bench_median(v, (size_t)runs);
}

static void row(const char *name, const char *unit, double ours, double peer)
{
        printf("| %-32s | %10.3f | %10.3f | %5.2f | %s\n", name, ours, peer, ours / peer, unit);
        fflush(stdout);
}

static void bench_verify(hyb_key *issuer, hyb_key **holders, hyb_token_trust *trust, int blocks)
{
        char names[32][64], label[64];
        char *tok = make_token(issuer, holders, blocks, 1, 4, names);
        hyb_token_verify_opts o;
        double ours[32], peer[32];
        const int n = 40;

        hyb_token_verify_opts_init(&o);
        o.audience = "hub-a";
        /* the signatures alone: each block's "header.payload" and its 64 bytes */
        uint8_t sig[4][64];
        const hyb_key *signer[4] = {issuer, holders[0], holders[1], holders[2]};
        char *msg[4];
        size_t mlen[4];
        char *p = tok;
        for (int b = 0; b < blocks; b++) {
                char *end = strchr(p, '~'), *dot = strrchr(p, '.');

                if (end)
                        dot = memrchr(p, '.', (size_t)(end - p));
                msg[b] = p;
                mlen[b] = (size_t)(dot - p);
                if (hyb_key_sign(signer[b], msg[b], mlen[b], sig[b]) < 0)
                        die("sign", -1, NULL);
                p = end ? end + 1 : p;
        }
        for (int k = 0; k < runs; k++) {
                uint64_t t0 = bench_now_ns();

                for (int i = 0; i < n; i++) {
                        hyb_token_result *res = NULL;
                        hyb_error e;
                        int r = hyb_token_verify(tok, trust, &o, &res, &e);

                        if (r < 0)
                                die("verify", r, &e);
                        hyb_token_result_unref(res);
                }
                ours[k] = (double)(bench_now_ns() - t0) / n / 1e3;
                t0 = bench_now_ns();
                for (int i = 0; i < n; i++)
                        for (int b = 0; b < blocks; b++)
                                if (hyb_key_verify(signer[b], msg[b], mlen[b], sig[b], 64) < 0)
                                        die("key verify", -1, NULL);
                peer[k] = (double)(bench_now_ns() - t0) / n / 1e3;
        }
        snprintf(label, sizeof label, "verify, %d block%s", blocks, blocks > 1 ? "s" : "");
        row(label, "us per token (peer: the ES256 verifications alone)", median_of(ours),
            median_of(peer));
        hyb_free(tok);
}

static void bench_check(hyb_key *issuer, hyb_key **holders, hyb_token_trust *trust, size_t n_wide,
                        size_t n_narrow)
{
        char names[32][64], label[64];
        char *tok = make_token(issuer, holders, 2, n_wide, n_narrow, names);
        hyb_token_verify_opts o;
        hyb_token_result *res = NULL;
        hyb_furi *pats[128], *hit = NULL, *miss = NULL;
        unsigned acts_of[128];
        size_t n_pats = 0;
        double ours[32], peer[32];
        const int n = 200000;
        volatile int sink = 0;
        hyb_error e;
        int r;

        hyb_token_verify_opts_init(&o);
        o.audience = "hub-a";
        if ((r = hyb_token_verify(tok, trust, &o, &res, &e)) < 0)
                die("verify", r, &e);
        for (size_t i = 0; i < hyb_token_result_get_n_caps(res); i++) {
                const char *text;

                hyb_token_result_get_cap(res, i, &text, &acts_of[n_pats]);
                hyb_furi_parse(text, (size_t)-1, NULL, &pats[n_pats++], NULL);
        }
        /* the last capability grants it (the worst case of a hit) */
        char text[96];
        snprintf(text, sizeof text, "/site/b%02zu/floor2/temp", n_narrow - 1);
        hyb_furi_parse(text, (size_t)-1, NULL, &hit, NULL);
        hyb_furi_parse("/site/annex/floor2/temp", (size_t)-1, NULL, &miss, NULL);
        for (int which = 0; which < 2; which++) {
                const hyb_furi *f = which ? miss : hit;
                /* the action of the last wide capability: its entries come last */
                unsigned act = n_wide == 4 ? HYB_TOKEN_ACT_CALL : HYB_TOKEN_ACT_SUB;

                for (int k = 0; k < runs; k++) {
                        uint64_t t0 = bench_now_ns();

                        for (int i = 0; i < n; i++)
                                sink += hyb_token_allowed(res, f, act);
                        ours[k] = (double)(bench_now_ns() - t0) / n;
                        t0 = bench_now_ns();
                        for (int i = 0; i < n; i++)
                                for (size_t c = 0; c < n_pats; c++)
                                        if ((acts_of[c] & act) == act &&
                                            hyb_furi_match(f, pats[c])) {
                                                sink++;
                                                break;
                                        }
                        peer[k] = (double)(bench_now_ns() - t0) / n;
                }
                snprintf(label, sizeof label, "check, %zu caps, %s", n_pats,
                         which ? "denied" : "allowed (last)");
                row(label, "ns per check (peer: hyb_furi_match loop)", median_of(ours),
                    median_of(peer));
        }
        for (size_t i = 0; i < n_pats; i++)
                hyb_furi_unref(pats[i]);
        hyb_furi_unref(hit);
        hyb_furi_unref(miss);
        hyb_token_result_unref(res);
        hyb_free(tok);
}

int main(int argc, char **argv)
{
        hyb_key *issuer = NULL, *holders[4] = {NULL};
        hyb_token_trust *trust = NULL;

        for (int i = 1; i < argc; i++) {
                if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc) {
                        runs = atoi(argv[++i]);
                } else {
                        fprintf(stderr, "usage: bench-token [--runs N]\n");
                        return 2;
                }
        }
        if (runs < 1 || runs > 32)
                runs = 5;
        if (hyb_key_generate(&issuer) < 0 || hyb_token_trust_new(&trust) < 0 ||
            hyb_token_trust_add(trust, "hub", issuer) < 0)
                die("setup", -1, NULL);
        for (int i = 0; i < 4; i++)
                if (hyb_key_generate(&holders[i]) < 0)
                        die("keygen", -1, NULL);
        printf("| %-32s | %10s | %10s | %5s | unit\n", "row (median of runs)", "libhybrid", "peer",
               "ratio");
        printf("|----------------------------------|------------|------------|-------|\n");
        fflush(stdout);
        bench_verify(issuer, holders, trust, 1);
        bench_verify(issuer, holders, trust, 3);
        bench_check(issuer, holders, trust, 2, 5);
        bench_check(issuer, holders, trust, 4, 25);
        for (int i = 0; i < 4; i++)
                hyb_key_unref(holders[i]);
        hyb_key_unref(issuer);
        hyb_token_trust_unref(trust);
        return 0;
}
