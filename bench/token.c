/* SPDX-License-Identifier: MIT */
/*
 * bench-token: the costs of tokens in the library, beside the bare operations they
 * are built on, measured in the same run:
 *
 *   ES256 sign, verify        hyb_key_sign/verify vs  bare mbedTLS on a key and group
 *                             loaded once (what the anchor measures of mbedTLS); verify
 *                             with a key seen (its table kept) and with keys not seen
 *                             (20 keys in turn, more than a thread keeps tables for)
 *   verify, 1 and 3 blocks    hyb_token_verify  vs  the ES256 verifications alone
 *   check, 10 and 100 caps    hyb_token_allowed vs  a plain hyb_furi_match loop over
 *                             the same patterns (the store ACL's shape)
 *
 * and, with --hybridd PATH (the daemon binary, started here with auth.tokens accept
 * on a socket in a temp dir), through a real hybridd:
 *
 *   connect, 1 and 3 blocks   hyb_bus_connect_with + token  vs  hyb_bus_connect (uid),
 *                             with a new token and with one the daemon verified before
 *   call RTT                  a token session's call        vs  a uid session's call
 *   store get                 a token session's store read  vs  a uid session's read
 *   store get p99 while new   a uid session's store reads (99th percentile of one) while
 *   tokens connect            a thread connects with new 3-block tokens  vs  with nobody
 *                             connecting: whether the daemon's signature checks hold up
 *                             the other peers
 *
 * (the callee of the calls is a uid session served by a thread of this process).
 * Usage: bench-token [--runs N] [--hybridd PATH]
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/ecdsa.h>
#include <mbedtls/entropy.h>
#include <mbedtls/sha256.h>

#include <hybrid/hybrid.h>

#include "bench-util.h"

static int runs = 5;

/* sizes of `pats` below: up to 4 x 25 effective capabilities */

static void die(const char *what, int r, const hyb_error *e)
{
        fprintf(stderr, "bench-token: %s: %s %s\n", what, hyb_strerror(r), e ? e->message : "");
        exit(1);
}

/* A token of `blocks` blocks (the last holder: holders[blocks - 1]) issued with caps; the first
 * attenuation narrows to narrow when n_narrow > 0, later ones keep what they got. */
static char *chain_token(hyb_key *issuer, hyb_key **holders, int blocks, const hyb_token_cap *caps,
                         size_t n_caps, const hyb_token_cap *narrow, size_t n_narrow)
{
        const char *aud[] = {"hub-a"};
        hyb_token_issue_opts o;
        hyb_token_attenuate_opts a;
        hyb_error e;
        char *tok = NULL, *next = NULL;
        int r;

        hyb_token_issue_opts_init(&o);
        o.iss = "hub";
        o.sub = "bench";
        o.aud = aud;
        o.n_aud = 1;
        o.holder = holders[0];
        o.caps = caps;
        o.n_caps = n_caps;
        o.dlg = 3;
        if ((r = hyb_token_issue(issuer, &o, &tok, &e)) < 0)
                die("issue", r, &e);
        for (int b = 1; b < blocks; b++) {
                hyb_token_attenuate_opts_init(&a);
                a.holder = holders[b];
                a.caps = b == 1 ? narrow : NULL;
                a.n_caps = b == 1 ? n_narrow : 0;
                if ((r = hyb_token_attenuate(tok, holders[b - 1], &a, &next, &e)) < 0)
                        die("attenuate", r, &e);
                hyb_free(tok);
                tok = next;
        }
        return tok;
}

/* A token whose effective rights are n_wide x n_narrow capabilities, of `blocks` blocks. */
static char *make_token(hyb_key *issuer, hyb_key **holders, int blocks, size_t n_wide,
                        size_t n_narrow, char narrow_names[][64])
{
        static const unsigned acts[] = {HYB_TOKEN_ACT_READ, HYB_TOKEN_ACT_SUB, HYB_TOKEN_ACT_WRITE,
                                        HYB_TOKEN_ACT_CALL};
        hyb_token_cap wide[4], narrow[32];

        for (size_t i = 0; i < n_wide; i++)
                wide[i] = (hyb_token_cap){"#", acts[i]};
        for (size_t i = 0; i < n_narrow; i++) {
                snprintf(narrow_names[i], 64, "/site/b%02zu/+/temp", i);
                narrow[i] = (hyb_token_cap){narrow_names[i],
                                            HYB_TOKEN_ACT_READ | HYB_TOKEN_ACT_SUB |
                                                    HYB_TOKEN_ACT_WRITE | HYB_TOKEN_ACT_CALL};
        }
        return chain_token(issuer, holders, blocks, wide, n_wide, narrow, n_narrow);
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

/* hyb_key_sign / hyb_key_verify beside bare mbedTLS: an ecdsa context (key and group)
 * loaded once and kept, deterministic signing to raw r and s, SHA-256 of the same
 * message in both columns. */
static void bench_es256(hyb_key *key)
{
        static const char msg[] = "eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJodWIiLCJzdWIiOiJiZW5jaCJ9";
        const size_t mlen = sizeof msg - 1;
        double s_ours[32], s_peer[32], v_ours[32], v_peer[32], n_ours[32];
        enum { NEWK = 20 }; /* more keys than a thread keeps tables for: each use is a first */
        hyb_key *newk[NEWK];
        uint8_t newsig[NEWK][64];
        mbedtls_entropy_context ent;
        mbedtls_ctr_drbg_context drbg;
        mbedtls_ecdsa_context ec;
        mbedtls_mpi r, s;
        uint8_t sig[64], hash[32];
        const int n = 100;

        mbedtls_entropy_init(&ent);
        mbedtls_ctr_drbg_init(&drbg);
        mbedtls_ecdsa_init(&ec);
        mbedtls_mpi_init(&r);
        mbedtls_mpi_init(&s);
        if (mbedtls_ctr_drbg_seed(&drbg, mbedtls_entropy_func, &ent,
                                  (const unsigned char *)"bench-token", 11) != 0 ||
            mbedtls_ecdsa_genkey(&ec, MBEDTLS_ECP_DP_SECP256R1, mbedtls_ctr_drbg_random,
                                 &drbg) != 0 ||
            hyb_key_sign(key, msg, mlen, sig) < 0)
                die("es256 setup", -1, NULL);
        for (int i = 0; i < NEWK; i++)
                if (hyb_key_generate(&newk[i]) < 0 || hyb_key_sign(newk[i], msg, mlen, newsig[i]) < 0)
                        die("es256 setup", -1, NULL);
        for (int k = 0; k < runs; k++) {
                uint64_t t0 = bench_now_ns();

                for (int i = 0; i < n; i++)
                        if (hyb_key_sign(key, msg, mlen, sig) < 0)
                                die("sign", -1, NULL);
                uint64_t t1 = bench_now_ns();
                for (int i = 0; i < n; i++)
                        if (hyb_key_verify(key, msg, mlen, sig, sizeof sig) < 0)
                                die("verify", -1, NULL);
                uint64_t t2 = bench_now_ns();
                for (int i = 0; i < n; i++)
                        if (mbedtls_sha256_ret((const unsigned char *)msg, mlen, hash, 0) != 0 ||
                            mbedtls_ecdsa_sign_det_ext(&ec.grp, &r, &s, &ec.d, hash, sizeof hash,
                                                       MBEDTLS_MD_SHA256, mbedtls_ctr_drbg_random,
                                                       &drbg) != 0)
                                die("mbedtls sign", -1, NULL);
                uint64_t t3 = bench_now_ns();
                for (int i = 0; i < n; i++)
                        if (mbedtls_sha256_ret((const unsigned char *)msg, mlen, hash, 0) != 0 ||
                            mbedtls_ecdsa_verify(&ec.grp, hash, sizeof hash, &ec.Q, &r, &s) != 0)
                                die("mbedtls verify", -1, NULL);
                uint64_t t4 = bench_now_ns();
                for (int i = 0; i < n; i++)
                        if (hyb_key_verify(newk[i % NEWK], msg, mlen, newsig[i % NEWK], 64) < 0)
                                die("verify", -1, NULL);
                uint64_t t5 = bench_now_ns();
                n_ours[k] = (double)(t5 - t4) / n / 1e3;
                s_ours[k] = (double)(t1 - t0) / n / 1e3;
                v_ours[k] = (double)(t2 - t1) / n / 1e3;
                s_peer[k] = (double)(t3 - t2) / n / 1e3;
                v_peer[k] = (double)(t4 - t3) / n / 1e3;
        }
        row("ES256 sign", "us per signature (peer: bare mbedTLS)", median_of(s_ours),
            median_of(s_peer));
        row("ES256 verify, key not seen", "us per verification (peer: bare mbedTLS)",
            median_of(n_ours), median_of(v_peer));
        row("ES256 verify, key seen", "us per verification (peer: bare mbedTLS)", median_of(v_ours),
            median_of(v_peer));
        for (int i = 0; i < NEWK; i++)
                hyb_key_unref(newk[i]);
        mbedtls_mpi_free(&r);
        mbedtls_mpi_free(&s);
        mbedtls_ecdsa_free(&ec);
        mbedtls_ctr_drbg_free(&drbg);
        mbedtls_entropy_free(&ent);
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

/* ------------------------------------------------------------ through hybridd */

static const char *hybridd_bin;
static char dtmp[] = "/tmp/bench-token.XXXXXX";
static char dsock[256];
static pid_t dpid;

static void daemon_stop(void)
{
        char p[300];

        if (dpid > 0) {
                kill(dpid, SIGTERM);
                waitpid(dpid, NULL, 0);
                dpid = 0;
        }
        snprintf(p, sizeof p, "%s/iss.pub", dtmp);
        unlink(p);
        snprintf(p, sizeof p, "%s/d.yaml", dtmp);
        unlink(p);
        unlink(dsock);
        rmdir(dtmp);
}

static void daemon_start(hyb_key *issuer)
{
        char pub[300], cfg[300];
        struct stat st;
        FILE *f;

        if (!mkdtemp(dtmp))
                die("mkdtemp", -1, NULL);
        snprintf(pub, sizeof pub, "%s/iss.pub", dtmp);
        snprintf(cfg, sizeof cfg, "%s/d.yaml", dtmp);
        snprintf(dsock, sizeof dsock, "%s/bus.sock", dtmp);
        if (hyb_key_save_public(issuer, pub, NULL) < 0 || !(f = fopen(cfg, "w")))
                die("daemon files", -1, NULL);
        fprintf(f, "auth:\n  tokens: accept\n  audience: hub-a\n  issuers:\n    hub: %s\n"
                   "store:\n  durability: memory\nlog:\n  level: warning\n", pub);
        fclose(f);
        dpid = fork();
        if (dpid == 0) {
                execl(hybridd_bin, hybridd_bin, "--foreground", "--socket", dsock, "--config", cfg,
                      (char *)NULL);
                _exit(127);
        }
        for (int i = 0; i < 500 && stat(dsock, &st) < 0; i++)
                usleep(10000);
        if (stat(dsock, &st) < 0)
                die("hybridd did not start", -1, NULL);
}

static hyb_bus *dconnect(const char *app, const char *runner, const char *tok, const hyb_key *key)
{
        hyb_bus_connect_options o;
        hyb_bus *b = NULL;
        hyb_error e;
        int r;

        hyb_bus_connect_options_init(&o);
        o.path = dsock;
        o.app = app;
        o.runner = runner;
        o.token = tok;
        o.key = key;
        hyb_error_clear(&e);
        if ((r = hyb_bus_connect_with(&o, &b, &e)) < 0)
                die("connect", r, &e);
        return b;
}

/* A token of `blocks` blocks (the last holder: holders[blocks - 1]) for the bench's rights. */
static char *daemon_token(hyb_key *issuer, hyb_key **holders, int blocks)
{
        static const hyb_token_cap caps[] = {
                { "/bench/#", HYB_TOKEN_ACT_READ | HYB_TOKEN_ACT_WRITE },
                { "bus://localhost/org.bench.srv/main/ping", HYB_TOKEN_ACT_CALL },
        };

        return chain_token(issuer, holders, blocks, caps, 2, NULL, 0);
}

/* Connects with a token of `blocks` blocks: cold (a token the daemon has not seen: every
 * block's signature and the proof are checked) or warm (the same token again: the daemon's
 * cache of verified tokens leaves the proof). */
static void bench_connect(hyb_key *issuer, hyb_key **holders, int blocks, bool cold)
{
        enum { N = 20 };
        double ours[32], peer[32];
        char *toks[N], runner[32], label[64];

        for (int r = 0; r < runs; r++) {
                for (int i = 0; i < N; i++)
                        toks[i] = cold || i == 0 ? daemon_token(issuer, holders, blocks) : toks[0];
                if (!cold) /* warm the cache */
                        hyb_bus_unref(dconnect("org.hybridos.cli", "warm", toks[0], holders[blocks - 1]));
                uint64_t t0 = bench_now_ns();
                for (int i = 0; i < N; i++) {
                        snprintf(runner, sizeof runner, "t%d", i);
                        hyb_bus_unref(dconnect("org.hybridos.cli", runner, toks[i], holders[blocks - 1]));
                }
                uint64_t t1 = bench_now_ns();
                for (int i = 0; i < N; i++) {
                        snprintf(runner, sizeof runner, "u%d", i);
                        hyb_bus_unref(dconnect("org.hybridos.cli", runner, NULL, NULL));
                }
                uint64_t t2 = bench_now_ns();
                ours[r] = (double)(t1 - t0) / N / 1e6;
                peer[r] = (double)(t2 - t1) / N / 1e6;
                for (int i = 0; i < N; i++)
                        if (cold || i == 0)
                                hyb_free(toks[i]);
        }
        snprintf(label, sizeof label, "connect, %d block%s, %s", blocks, blocks > 1 ? "s" : "",
                 cold ? "new token" : "again");
        row(label, "ms per connect (peer: uid policy)", median_of(ours), median_of(peer));
}

static atomic_bool srv_stop;

static int on_ping(hyb_bus_request *req, void *ud)
{
        (void)ud;
        return hyb_bus_request_reply(req, 200, "1", 1, 0);
}

static void *srv_main(void *ud)
{
        hyb_bus *b = ud;

        while (!atomic_load(&srv_stop)) {
                hyb_bus_wait(b, 20000);
                while (hyb_bus_process(b) > 0)
                        ;
        }
        return NULL;
}

static double rtt_us(hyb_bus *b, int n)
{
        uint64_t t0 = bench_now_ns();

        for (int i = 0; i < n; i++) {
                hyb_bus_reply *rep = NULL;
                int r = hyb_bus_call(b, "@localhost/org.bench.srv/main", "ping", "{}", 2, 0, 5000, &rep, NULL);
                if (r < 0 || hyb_bus_reply_get_status(rep) != 200)
                        die("call", r, NULL);
                hyb_bus_reply_unref(rep);
        }
        return (double)(bench_now_ns() - t0) / n / 1e3;
}

static double get_us(hyb_bus *b, int n)
{
        uint64_t t0 = bench_now_ns();

        for (int i = 0; i < n; i++) {
                hyb_obj *o = NULL;
                hyb_error e;
                int r = hyb_bus_store_read(b, "/bench/k", &o, &e);
                if (r < 0 || !o)
                        die("store read", r, &e);
                hyb_obj_unref(o);
        }
        return (double)(bench_now_ns() - t0) / n / 1e3;
}

static void bench_daemon_ops(hyb_key *issuer, hyb_key **holders)
{
        enum { N = 2000 };
        double c_ours[32], c_peer[32], g_ours[32], g_peer[32];
        char *tok = daemon_token(issuer, holders, 1);
        hyb_bus *srv = dconnect("org.bench.srv", "main", NULL, NULL);
        hyb_bus *tb = dconnect("org.hybridos.cli", "tok", tok, holders[0]);
        hyb_bus *ub = dconnect("org.hybridos.cli", "uid", NULL, NULL);
        hyb_slot *slot = NULL;
        hyb_obj *v = NULL;
        pthread_t th;
        hyb_error e;

        if (hyb_bus_register_procedure(srv, "ping", "*", "*", on_ping, NULL, &slot, &e) < 0 ||
            hyb_obj_new_int(7, &v) < 0 || hyb_bus_store_write(ub, "/bench/k", v, 0, &e) < 0)
                die("daemon setup", -1, &e);
        hyb_obj_unref(v);
        pthread_create(&th, NULL, srv_main, srv);
        rtt_us(tb, 200); /* warm-up */
        rtt_us(ub, 200);
        for (int r = 0; r < runs; r++) {
                /* alternate, so drift on a shared machine hits both columns alike */
                c_ours[r] = rtt_us(tb, N);
                c_peer[r] = rtt_us(ub, N);
                g_ours[r] = get_us(tb, N);
                g_peer[r] = get_us(ub, N);
        }
        row("call RTT, token", "us per call (peer: uid policy)", median_of(c_ours), median_of(c_peer));
        row("store get, token", "us per get (peer: uid policy)", median_of(g_ours), median_of(g_peer));
        atomic_store(&srv_stop, true);
        pthread_join(th, NULL);
        hyb_slot_unref(slot);
        hyb_bus_unref(srv);
        hyb_bus_unref(tb);
        hyb_bus_unref(ub);
        hyb_free(tok);
}

/* Other peers while new tokens connect: store gets of a uid session, each timed, while a
 * thread connects with new 3-block tokens (four signatures and a proof each, checked by the
 * daemon); peer: the same gets with no one connecting.  The 99th percentile of one get. */
typedef struct burst {
        hyb_key *issuer, **holders;
        char *toks[20];
        atomic_bool done;
} burst;

static void *burst_main(void *ud)
{
        burst *bu = ud;
        char runner[32];

        for (int i = 0; i < 20; i++) {
                snprintf(runner, sizeof runner, "s%d", i);
                hyb_bus_unref(dconnect("org.hybridos.cli", runner, bu->toks[i], bu->holders[2]));
        }
        atomic_store(&bu->done, true);
        return NULL;
}

/* Timed gets on b until *stop (or n of them when stop is NULL); the 99th percentile in us. */
static double get_p99_us(hyb_bus *b, atomic_bool *stop, size_t n, size_t *ret_n)
{
        static double lat[200000];
        size_t k = 0;

        while (k < sizeof lat / sizeof lat[0] && (stop ? !atomic_load(stop) : k < n)) {
                uint64_t t0 = bench_now_ns();
                get_us(b, 1);
                lat[k++] = (double)(bench_now_ns() - t0) / 1e3;
        }
        if (ret_n)
                *ret_n = k;
        if (k == 0)
                return 0;
        qsort(lat, k, sizeof lat[0], bench_cmp_double);
        return lat[(k * 99) / 100];
}

static void bench_stall(hyb_key *issuer, hyb_key **holders)
{
        double ours[32], peer[32];
        hyb_bus *ub = dconnect("org.hybridos.cli", "stall", NULL, NULL);
        hyb_obj *v = NULL;
        hyb_error e;

        if (hyb_obj_new_int(7, &v) < 0 || hyb_bus_store_write(ub, "/bench/k", v, 0, &e) < 0)
                die("stall setup", -1, &e);
        hyb_obj_unref(v);
        for (int r = 0; r < runs; r++) {
                burst bu = { .issuer = issuer, .holders = holders };
                pthread_t th;
                size_t n = 0;

                for (int i = 0; i < 20; i++)
                        bu.toks[i] = daemon_token(issuer, holders, 3);
                atomic_init(&bu.done, false);
                pthread_create(&th, NULL, burst_main, &bu);
                ours[r] = get_p99_us(ub, &bu.done, 0, &n);
                pthread_join(th, NULL);
                peer[r] = get_p99_us(ub, NULL, n, NULL);
                for (int i = 0; i < 20; i++)
                        hyb_free(bu.toks[i]);
        }
        row("store get p99, new tokens conn.", "us per get, 99th pct (peer: nobody connecting)",
            median_of(ours), median_of(peer));
        hyb_bus_unref(ub);
}

int main(int argc, char **argv)
{
        hyb_key *issuer = NULL, *holders[4] = {NULL};
        hyb_token_trust *trust = NULL;

        for (int i = 1; i < argc; i++) {
                if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc) {
                        runs = atoi(argv[++i]);
                } else if (strcmp(argv[i], "--hybridd") == 0 && i + 1 < argc) {
                        hybridd_bin = argv[++i];
                } else {
                        fprintf(stderr, "usage: bench-token [--runs N] [--hybridd PATH]\n");
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
        bench_es256(issuer);
        bench_verify(issuer, holders, trust, 1);
        bench_verify(issuer, holders, trust, 3);
        bench_check(issuer, holders, trust, 2, 5);
        bench_check(issuer, holders, trust, 4, 25);
        if (hybridd_bin) {
                daemon_start(issuer);
                bench_connect(issuer, holders, 1, true);
                bench_connect(issuer, holders, 3, true);
                bench_connect(issuer, holders, 1, false);
                bench_connect(issuer, holders, 3, false);
                bench_daemon_ops(issuer, holders);
                bench_stall(issuer, holders);
                daemon_stop();
        } else {
                printf("(connect, call RTT and store get through hybridd: run with --hybridd PATH)\n");
        }
        for (int i = 0; i < 4; i++)
                hyb_key_unref(holders[i]);
        hyb_key_unref(issuer);
        hyb_token_trust_unref(trust);
        return 0;
}
