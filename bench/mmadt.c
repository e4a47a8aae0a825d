/* SPDX-License-Identifier: MIT */
/*
 * bench/mmadt.c - mm-ADT programs beside the same computations in Lua 5.4, in the same run.
 *
 * usage: bench-mmadt [--quick] [--rounds N] [--rows IDS] [--dir DIR] [--lua PROG] [--no-peer]
 *                    [--verbose]
 *
 * Each row is a pair bench/mmadt/<id>.mmadt + bench/mmadt/<id>.lua doing the same computation
 * and producing the same result.  The .mmadt file names its result in a `--- expect: TEXT`
 * line: every run's results (REPL form, joined by a blank) must equal TEXT, and so must the
 * Lua script's, so a broken program cannot look fast.
 *
 * Our side: a fresh VM (in-process memory store) per round, the text compiled once per round
 * outside the clock, hyb_mmadt_run() timed.  Lua side: `lua5.4 <id>.lua` as a subprocess; the
 * script times its own computation with os.clock() and prints "<ms> <result>", so process
 * start-up is excluded on both sides.  os.clock() is process CPU time, so ours is timed with
 * CLOCK_PROCESS_CPUTIME_ID too.  In each round ours and Lua alternate, and which one goes
 * first alternates from round to round; the table shows the median of the rounds (5).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <hybrid/hybrid.h>

#include "bench-util.h"

#ifndef BENCH_MMADT_DIR
#define BENCH_MMADT_DIR "bench/mmadt"
#endif

#define MAX_ROUNDS 15
#define TARGET_RATIO 3.0

static const struct row {
        const char *id;
        const char *label;
} rows[] = {
        { "arith", "arithmetic stream {1..1000000}" },
        { "filter", "filters + count {1..1000000}" },
        { "rec", "rec build + field {1..1000000}" },
        { "split", "split/merge {1..1000000}" },
        { "str", "string building {1..1000000}" },
        { "store", "store write/read 100000 keys" },
        { "sub", "subscription chain 3 hops x 100000" },
};

static struct {
        int rounds;
        bool no_peer, verbose;
        const char *rows;
        const char *dir;
        const char *lua;
} cfg = { .rounds = 5, .dir = BENCH_MMADT_DIR, .lua = "lua5.4" };

/* ------------------------------------------------------------------ plumbing */

static _Noreturn void die(const char *what, const char *detail)
{
        fprintf(stderr, "bench-mmadt: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
        exit(1);
}

static double cpu_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
        return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static char *slurp(const char *path)
{
        FILE *f = fopen(path, "re");
        char *text;
        long n;

        if (!f)
                die("cannot open", path);
        if (fseek(f, 0, SEEK_END) < 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) < 0)
                die("cannot read", path);
        text = malloc((size_t)n + 1);
        if (!text || fread(text, 1, (size_t)n, f) != (size_t)n)
                die("cannot read", path);
        text[n] = '\0';
        fclose(f);
        return text;
}

/* The text after `--- expect:` (trimmed), or dies: every row must say what it computes. */
static char *expected_of(const char *text, const char *path)
{
        const char *p = strstr(text, "--- expect:");
        size_t n;

        if (!p)
                die("no '--- expect:' line in", path);
        p += strlen("--- expect:");
        p += strspn(p, " \t");
        n = strcspn(p, "\n");
        while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t' || p[n - 1] == '\r'))
                n--;
        return strndup(p, n);
}

static void loadavg(const char *when)
{
        FILE *f = fopen("/proc/loadavg", "re");
        double l1 = 0;

        if (f && fscanf(f, "%lf", &l1) == 1)
                printf("%s load average %.2f (cpus: %ld)\n", when, l1, sysconf(_SC_NPROCESSORS_ONLN));
        if (f)
                fclose(f);
}

/* ------------------------------------------------------------------ our side */

typedef struct results {
        char buf[256];
        size_t len;
} results;

/* Result objs in REPL form, joined by a blank (formatting is not timed work worth noting:
 * every row reports one obj). */
static int collect(const hyb_obj *o, void *userdata)
{
        results *R = userdata;
        char *s = NULL;

        if (hyb_obj_format(o, HYB_FORMAT_REPL, &s) < 0)
                return -ENOMEM;
        R->len += snprintf(R->buf + R->len, sizeof(R->buf) - R->len, "%s%s", R->len ? " " : "",
                           s);
        if (R->len >= sizeof(R->buf))
                R->len = sizeof(R->buf) - 1;
        hyb_free(s);
        return 0;
}

static double ours(const struct row *row, const char *text, const char *expect)
{
        hyb_mmadt_options opts;
        hyb_mmadt_program *p = NULL;
        hyb_mmadt *vm = NULL;
        results R = { .len = 0 };
        hyb_error e;
        double t0, t1;
        int r;

        /* the limits must not be what the bench measures: 1M-element streams run ~10
         * instructions per element and sum() keeps its operands */
        hyb_mmadt_options_init(&opts);
        opts.budget = UINT64_C(4000000000);
        opts.max_memory = (size_t)2 << 30;
        r = hyb_mmadt_new(NULL, "bench", &opts, &vm);
        if (r < 0)
                die("hyb_mmadt_new", hyb_strerror(r));
        r = hyb_mmadt_compile(vm, text, (size_t)-1, &p, &e);
        if (r < 0)
                die(row->id, e.message);
        t0 = cpu_ms();
        r = hyb_mmadt_run(vm, p, NULL, collect, &R, &e);
        t1 = cpu_ms();
        if (r < 0)
                die(row->id, e.message[0] ? e.message : hyb_strerror(r));
        R.buf[R.len] = '\0';
        if (strcmp(R.buf, expect) != 0) {
                fprintf(stderr, "bench-mmadt: %s: result '%s', expected '%s'\n", row->id, R.buf,
                        expect);
                exit(1);
        }
        hyb_mmadt_program_unref(p);
        hyb_mmadt_unref(vm);
        return t1 - t0;
}

/* ------------------------------------------------------------------ Lua side */

static double lua(const struct row *row, const char *expect)
{
        char cmd[1024], line[512], res[256];
        double ms = -1;
        FILE *f;

        snprintf(cmd, sizeof(cmd), "'%s' '%s/%s.lua'", cfg.lua, cfg.dir, row->id);
        f = popen(cmd, "re");
        if (!f)
                die("popen", cmd);
        if (!fgets(line, sizeof(line), f) || sscanf(line, "%lf %255s", &ms, res) != 2)
                die("unexpected output from", cmd);
        if (pclose(f) != 0)
                die("failed:", cmd);
        if (strcmp(res, expect) != 0) {
                fprintf(stderr, "bench-mmadt: %s.lua: result '%s', expected '%s'\n", row->id,
                        res, expect);
                exit(1);
        }
        return ms;
}

/* ------------------------------------------------------------------ driver */

static bool selected(const char *id)
{
        const char *p = cfg.rows;
        size_t n = strlen(id);

        if (!p)
                return true;
        while ((p = strstr(p, id))) {
                if ((p == cfg.rows || p[-1] == ',') && (p[n] == ',' || p[n] == '\0'))
                        return true;
                p += n;
        }
        return false;
}

static void usage(void)
{
        fputs("usage: bench-mmadt [--quick] [--rounds N] [--rows id,id] [--dir DIR] [--lua PROG]\n"
              "                   [--no-peer] [--verbose]\n"
              "rows: arith filter rec split str store sub\n",
              stderr);
        exit(2);
}

int main(int argc, char **argv)
{
        static const struct option longopts[] = {
                { "quick", no_argument, NULL, 'q' },     { "rounds", required_argument, NULL, 'r' },
                { "rows", required_argument, NULL, 'w' }, { "dir", required_argument, NULL, 'd' },
                { "lua", required_argument, NULL, 'l' },  { "no-peer", no_argument, NULL, 'n' },
                { "verbose", no_argument, NULL, 'v' },    { "help", no_argument, NULL, 'h' },
                {},
        };
        int c, pass = 0, miss = 0;

        while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
                switch (c) {
                case 'q': cfg.rounds = 1; break;
                case 'r': cfg.rounds = atoi(optarg); break;
                case 'w': cfg.rows = optarg; break;
                case 'd': cfg.dir = optarg; break;
                case 'l': cfg.lua = optarg; break;
                case 'n': cfg.no_peer = true; break;
                case 'v': cfg.verbose = true; break;
                default: usage();
                }
        }
        if (cfg.rounds < 1 || cfg.rounds > MAX_ROUNDS)
                die("--rounds must be 1..15", NULL);

        loadavg("start:");
        printf("median of %d round%s, CPU ms of the computation only (compile and process start-up "
               "excluded)\n\n",
               cfg.rounds, cfg.rounds > 1 ? "s" : "");
        printf("%-36s %10s %10s %7s  %s\n", "program", "ours ms", "Lua ms", "ratio",
               "vs 3x Lua");
        for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
                const struct row *row = &rows[i];
                double o[MAX_ROUNDS], l[MAX_ROUNDS], mo, ml = 0;
                char path[1024], *text, *expect;

                if (!selected(row->id))
                        continue;
                snprintf(path, sizeof(path), "%s/%s.mmadt", cfg.dir, row->id);
                text = slurp(path);
                expect = expected_of(text, path);
                for (int k = 0; k < cfg.rounds; k++) {
                        fprintf(stderr, "\r%s round %d/%d ", row->id, k + 1, cfg.rounds);
                        if (cfg.no_peer) {
                                o[k] = ours(row, text, expect);
                        } else if (k % 2 == 0) {
                                o[k] = ours(row, text, expect);
                                l[k] = lua(row, expect);
                        } else {
                                l[k] = lua(row, expect);
                                o[k] = ours(row, text, expect);
                        }
                }
                fprintf(stderr, "\r%40s\r", "");
                mo = bench_median(o, cfg.rounds);
                if (cfg.no_peer) {
                        printf("%-36s %10.1f %10s %7s  %s\n", row->label, mo, "-", "-", "-");
                } else {
                        double ratio;

                        ml = bench_median(l, cfg.rounds);
                        ratio = mo / ml;
                        printf("%-36s %10.1f %10.1f %6.2fx  %s\n", row->label, mo, ml, ratio,
                               ratio <= TARGET_RATIO ? "PASS" : "MISS");
                        if (ratio <= TARGET_RATIO)
                                pass++;
                        else
                                miss++;
                }
                if (cfg.verbose) {
                        printf("RESULT id=%s result=%s ours=", row->id, expect);
                        for (int k = 0; k < cfg.rounds; k++)
                                printf("%s%.2f", k ? "," : "", o[k]);
                        if (!cfg.no_peer) {
                                printf(" lua=");
                                for (int k = 0; k < cfg.rounds; k++)
                                        printf("%s%.2f", k ? "," : "", l[k]);
                        }
                        printf("\n");
                }
                fflush(stdout);
                free(expect);
                free(text);
        }
        if (!cfg.no_peer)
                printf("\n%d PASS, %d MISS (target: each row within %.0fx of Lua's time)\n", pass,
                       miss, TARGET_RATIO);
        loadavg("end:");
        return 0;
}
