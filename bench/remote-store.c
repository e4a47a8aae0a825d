/* SPDX-License-Identifier: MIT */
/*
 * bench/remote-store.c - the store served by a daemon beside redis-server and mosquitto in
 * the same run.
 *
 * usage: bench-remote-store [--quick] [--rounds N] [--keys K] [--ops N]
 *                           [--rows get,put,pipe,delivery] [--hybridd SOCKET]
 *                           [--redis SOCKET] [--mosquitto SOCKET] [--verbose]
 *                           [--settle MS] [--cpu-report]
 *
 * bench/run-remote-store.sh starts redis-server (Unix socket only, no persistence) and
 * mosquitto (a Unix listener) in a temporary directory and passes their sockets here.
 *
 * Rows (bench/README.md explains each):
 *   get p50 / p99            one client, one GET of a random stored key at a time
 *   put p50 / p99            one client, one SET of a random key at a time
 *   pipelined gets           32 GETs written, then their 32 replies read, repeated
 *   delivery p50 / p99       a write (redis PUBLISH, mosquitto QoS 0 publish) until the
 *                            subscribing client of the same process has the message
 *
 * The hybridd column needs a hybridd that serves its store (`store:` in its config) and the
 * client API of hybrid/bus-store.h; built without that header, or run without --hybridd,
 * the column reads "not measured" and no ratio or verdict is printed for it.  Its get and
 * put are hyb_bus_store_read / hyb_bus_store_write (one call, waiting for the answer); its
 * pipelined gets and its delivery writes are the same calls' packets (storeRead, storeWrite
 * of doc/protocol.md "Store") sent with hyb_bus_call_async (the pipeline on a corked
 * connection, hyb_bus_set_cork, so its 32 calls leave in one write); the delivery row's
 * write is a retained one (stored, then delivered), the subscriber uses
 * hyb_bus_store_subscribe.
 *
 * Every latency is one operation timed with CLOCK_MONOTONIC, after a warm-up; a cell is the
 * median over the rounds of that round's percentile.  Every reply is checked: a benchmark
 * that times failing calls measures nothing.  Both peers are driven from this one thread
 * with blocking calls, the same way for each.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <sched.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <hybrid/bus-store.h>
#include <hybrid/bus.h>
#ifdef HAVE_HIREDIS
#include <hiredis/hiredis.h>
#endif
#ifdef HAVE_MOSQUITTO
#include <mosquitto.h>

#include "bench-util.h"
#endif

#define MAX_ROUNDS 15
#define PIPE_DEPTH 32
#define TOPIC "bench/remote-store/delivery"
#define TOPIC_FURI "/bench/remote-store/delivery"

static struct {
        int rounds;
        bool quick, verbose;
        bool cpu_report;          /* --cpu-report: where the benchmark and each daemon ran */
        long settle_ms;           /* idle pause before every measured row (--settle) */
        size_t keys;
        long n_lat, n_pipe;
        unsigned rows;            /* G_* bits: the groups of rows measured */
        const char *hybridd;      /* socket of a hybridd serving its store; NULL: not measured */
        const char *redis, *mosq; /* socket paths; NULL: that peer is not measured */
} opt = { .rounds = 5, .keys = 100000, .settle_ms = 100 };

/* Groups of rows --rows selects (all by default). */
enum { G_GET = 1, G_PUT = 2, G_PIPE = 4, G_DEL = 8, G_ALL = 15 };

static void die(const char *what, const char *detail)
{
        fprintf(stderr, "bench-remote-store: %s%s%s\n", what, detail ? ": " : "",
                detail ? detail : "");
        exit(1);
}

/* The stored keys, named as bench-store names them. */
static void key_name(char *buf, size_t size, size_t i)
{
        snprintf(buf, size, "/sensors/room%zu/dev%zu/m%zu", i / 400, i / 20 % 20, i % 20);
}

/*
 * Every measured row of every peer starts from the same state: the machine left idle for
 * --settle milliseconds.  Without it a row starts in whatever state the previous one left
 * (the same peer's pipelined gets before its delivery row, its preload before its get
 * row, another peer's row before the first one), and on a VM whose idle vCPUs halt the
 * scheduler keeps a client/daemon pair on one vCPU or on two according to that state
 * (bench/README.md, "Placement").
 */
static void settle(void)
{
        struct timespec ts = { opt.settle_ms / 1000, opt.settle_ms % 1000 * 1000000L };

        if (opt.settle_ms > 0)
                while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                        ;
}

/*
 * --cpu-report: every 64th operation of a latency row, after its time is taken, the CPU
 * this thread runs on is compared with the CPU the daemon's thread last ran on (field 39 of
 * /proc/PID/stat; the daemon is the peer of the connection, SO_PEERCRED).  The share of
 * samples on one CPU tells which placement a row measured.
 */
typedef struct cpu_watch {
        int fd;         /* /proc/PID/stat of the daemon; -1: not watched */
        long same, n;   /* samples on this thread's CPU, samples */
} cpu_watch;

static cpu_watch cpu_watch_open(int sock)
{
        cpu_watch w = { .fd = -1 };
        struct ucred cr;
        socklen_t len = sizeof cr;
        char path[64];

        if (!opt.cpu_report)
                return w;
        if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0)
                die("--cpu-report: SO_PEERCRED", strerror(errno));
        snprintf(path, sizeof path, "/proc/%d/stat", (int)cr.pid);
        w.fd = open(path, O_RDONLY | O_CLOEXEC);
        if (w.fd < 0)
                die("--cpu-report: open /proc/PID/stat", strerror(errno));
        return w;
}

/* The CPU the task of /proc/PID/stat last ran on, or -1. */
static int stat_cpu(int fd)
{
        char buf[1024];
        ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
        char *p;
        int field = 2;

        if (n <= 0)
                return -1;
        buf[n] = '\0';
        p = strrchr(buf, ')'); /* the command name may hold spaces and parentheses */
        if (!p)
                return -1;
        for (p++; *p && field < 39; p++)
                if (*p == ' ')
                        field++;
        return field == 39 ? atoi(p) : -1;
}

static void cpu_sample(cpu_watch *w, long i)
{
        int c;

        if (w->fd < 0 || i < 0 || (i & 63) != 0)
                return;
        c = stat_cpu(w->fd);
        if (c < 0)
                return;
        w->n++;
        if (c == sched_getcpu())
                w->same++;
}

static void cpu_report(cpu_watch *w, int round, const char *row, const char *peer)
{
        if (w->fd < 0)
                return;
        fprintf(stderr, "CPUS round=%d row=\"%s\" peer=%s together=%ld/%ld\n", round, row, peer,
                w->same, w->n);
        w->same = w->n = 0;
}

/* ------------------------------------------------------------------ the table */

enum { S_HYB, S_REDIS, S_MOSQ, N_SRC };
static const char *const src_name[N_SRC] = { "hybridd", "redis", "mosquitto" };

enum { R_GET50, R_GET99, R_PUT50, R_PUT99, R_PIPE, R_DEL50, R_DEL99, N_ROW };
static const struct {
        const char *name, *unit, *fmt;
} rowdef[N_ROW] = {
        { "get p50", "us", "%.1f" },
        { "get p99", "us", "%.1f" },
        { "put p50", "us", "%.1f" },
        { "put p99", "us", "%.1f" },
        { "pipelined gets (32 a batch)", "k/s", "%.1f" },
        { "write -> subscriber p50", "us", "%.1f" },
        { "write -> subscriber p99", "us", "%.1f" },
};

/* Our figure relative to a peer's: ours <= bound x peer (or >= when higher is better). */
static const struct {
        int row, peer;
        double bound;
        bool higher;
        const char *text;
} targets[] = {
        { R_GET50, S_REDIS, 1.0, false, "<= 1.0x redis" },
        { R_PUT50, S_REDIS, 1.0, false, "<= 1.0x redis" },
        { R_PIPE, S_REDIS, 0.8, true, ">= 0.8x redis" },
        { R_DEL50, S_MOSQ, 1.0, false, "<= 1.0x mosquitto" },
};

static double val[N_ROW][N_SRC][MAX_ROUNDS];
static cpu_watch cw[N_SRC] = { { .fd = -1 }, { .fd = -1 }, { .fd = -1 } };

static unsigned row_group(int r)
{
        switch (r) {
        case R_GET50:
        case R_GET99:
                return G_GET;
        case R_PUT50:
        case R_PUT99:
                return G_PUT;
        case R_PIPE:
                return G_PIPE;
        default:
                return G_DEL;
        }
}

static void print_table(void)
{
        char cell[32];

        printf("\nstore over a socket vs peers: medians over %d rounds, %zu keys%s\n", opt.rounds,
               opt.keys, opt.quick ? "  [--quick: smoke figures only]" : "");
        printf("%-29s %-4s", "row", "unit");
        for (int s = 0; s < N_SRC; s++)
                printf(" %12s", src_name[s]);
        printf("  %-6s %-18s %s\n", "ratio", "target", "verdict");
        for (int r = 0; r < N_ROW; r++) {
                bool first = true;

                if (!(opt.rows & row_group(r)))
                        continue;
                printf("%-29s %-4s", rowdef[r].name, rowdef[r].unit);
                for (int s = 0; s < N_SRC; s++) {
                        double m = bench_median(val[r][s], opt.rounds);
                        if (s == S_HYB && isnan(m))
                                snprintf(cell, sizeof cell, "not measured");
                        else if (isnan(m))
                                snprintf(cell, sizeof cell, "-");
                        else
                                snprintf(cell, sizeof cell, rowdef[r].fmt, m);
                        printf(" %12s", cell);
                }
                for (size_t t = 0; t < sizeof(targets) / sizeof(targets[0]); t++) {
                        double ours, peer;

                        if (targets[t].row != r)
                                continue;
                        ours = bench_median(val[r][S_HYB], opt.rounds);
                        peer = bench_median(val[r][targets[t].peer], opt.rounds);
                        if (!first)
                                printf("\n%-29s %-4s%*s", "", "", 13 * N_SRC, "");
                        first = false;
                        if (isnan(ours) || isnan(peer)) {
                                printf("  %-6s %-18s %s", "-", targets[t].text,
                                       isnan(ours) ? "not measured (no --hybridd)"
                                                   : "not measured (peer missing)");
                                continue;
                        }
                        bool pass = targets[t].higher ? ours >= targets[t].bound * peer
                                                      : ours <= targets[t].bound * peer;
                        printf("  %-6.2f %-18s %s", ours / peer, targets[t].text,
                               pass ? "MEETS" : "MISSES");
                }
                printf("\n");
        }
        printf("latencies: one operation at a time, blocking, from one thread; "
               "ratio = hybridd / peer\n");
}

/* ------------------------------------------------------------------ hybridd (bus-store.h) */

static hyb_bus *hyb_open(const char *runner)
{
        hyb_bus *b = NULL;
        hyb_error e;
        int r;

        hyb_error_clear(&e);
        r = hyb_bus_connect(opt.hybridd, "bench.remotestore", runner, &b, &e);
        if (r < 0)
                die("hybridd: connect", e.message[0] ? e.message : hyb_strerror(r));
        return b;
}

static void hyb_check(const char *what, int r, const hyb_error *e)
{
        if (r < 0)
                die(what, e->message[0] ? e->message : hyb_strerror(r));
}

/* The value text of key i, as the redis side stores it (a real in exact form). */
static void hyb_value_text(char *buf, size_t size, uint64_t x)
{
        snprintf(buf, size, "%.3f", 20.0 + (double)(x % 256) / 8.0);
}

static void hyb_check_real(hyb_obj *v, const char *what)
{
        if (!v || hyb_obj_get_kind(v) != HYB_OBJ_REAL)
                die(what, "not the stored real");
        hyb_obj_unref(v);
}

typedef struct hyb_pending {
        long n;       /* replies still to come */
        bool parse;   /* a storeRead: the body must be a real */
} hyb_pending;

static void hyb_on_reply(hyb_bus *bus, const hyb_bus_reply *reply, void *ud)
{
        hyb_pending *p = ud;

        (void)bus;
        if (hyb_bus_reply_get_status(reply) != 200)
                die("hybridd: a store call failed", hyb_bus_reply_get_message(reply));
        if (p->parse) {
                size_t len;
                const void *body = hyb_bus_reply_get_body(reply, &len);
                hyb_obj *v = NULL;
                if (hyb_obj_parse(body, len, &v, NULL) < 0)
                        die("hybridd: storeRead answered no obj", NULL);
                hyb_check_real(v, "hybridd: pipelined storeRead");
        }
        p->n--;
}

/* Runs the connection until at most `left` replies of p are still to come. */
static void hyb_drain_to(hyb_bus *b, hyb_pending *p, long left)
{
        int r;

        while (p->n > left) {
                r = hyb_bus_process(b);
                if (r < 0)
                        die("hybridd: process", hyb_strerror(r));
                if (r == 0 && p->n > left && (r = hyb_bus_wait(b, 5000000)) <= 0)
                        die("hybridd: no answer within 5 s", r < 0 ? hyb_strerror(r) : NULL);
        }
}

static void hyb_drain(hyb_bus *b, hyb_pending *p)
{
        hyb_drain_to(b, p, 0);
}

/* Every key, written with storeWrite calls, up to 256 in flight (doc/protocol.md "Store"). */
static void hyb_preload(hyb_bus *b)
{
        hyb_pending p = { 0 };
        char body[160], v[32];

        for (size_t i = 0; i < opt.keys; i++) {
                size_t n;

                hyb_value_text(v, sizeof v, i);
                key_name(body, sizeof body, i);
                n = strlen(body);
                snprintf(body + n, sizeof body - n, "\n%s", v);
                hyb_check("hybridd: storeWrite",
                          hyb_bus_call_async(b, HYB_BUS_BUILTIN_ENDPOINT, "storeWrite", body,
                                             strlen(body), HYB_BODY_BINARY, 0, hyb_on_reply, &p,
                                             NULL),
                          &(hyb_error){ 0 });
                if (++p.n >= 256) {
                        hyb_bus_flush(b);
                        hyb_drain_to(b, &p, 128);
                }
        }
        hyb_bus_flush(b);
        hyb_drain(b, &p);
}

static void hyb_latency(hyb_bus *b, bool put, double *lat, long n, uint64_t *rng)
{
        char key[96], vt[32];
        hyb_error e;

        for (long i = -n / 10; i < n; i++) {
                uint64_t x = bench_xorshift(rng), t0;

                key_name(key, sizeof key, x % opt.keys);
                hyb_error_clear(&e);
                if (put) {
                        hyb_obj *v = NULL;
                        hyb_value_text(vt, sizeof vt, x >> 40);
                        hyb_check("hybridd: value", hyb_obj_parse(vt, (size_t)-1, &v, &e), &e);
                        t0 = bench_now_ns();
                        hyb_check("hybridd: hyb_bus_store_write",
                                  hyb_bus_store_write(b, key, v, 0, &e), &e);
                        if (i >= 0)
                                lat[i] = (double)(bench_now_ns() - t0) / 1e3;
                        cpu_sample(&cw[S_HYB], i);
                        hyb_obj_unref(v);
                } else {
                        hyb_obj *v = NULL;
                        t0 = bench_now_ns();
                        hyb_check("hybridd: hyb_bus_store_read",
                                  hyb_bus_store_read(b, key, &v, &e), &e);
                        if (i >= 0)
                                lat[i] = (double)(bench_now_ns() - t0) / 1e3;
                        cpu_sample(&cw[S_HYB], i);
                        hyb_check_real(v, "hybridd: hyb_bus_store_read");
                }
        }
}

/* 32 storeRead calls sent, then their 32 replies read: the shape of the redis row. */
static double hyb_pipelined(hyb_bus *b, uint64_t *rng)
{
        hyb_pending p = { .parse = true };
        char key[96];
        uint64_t t0 = bench_now_ns();
        long done = 0;

        /* Corked, the 32 calls leave in one write, as hiredis sends its pipeline. */
        hyb_bus_set_cork(b, true);
        while (done < opt.n_pipe) {
                for (int k = 0; k < PIPE_DEPTH; k++) {
                        key_name(key, sizeof key, bench_xorshift(rng) % opt.keys);
                        hyb_check("hybridd: storeRead",
                                  hyb_bus_call_async(b, HYB_BUS_BUILTIN_ENDPOINT, "storeRead", key,
                                                     strlen(key), HYB_BODY_BINARY, 0,
                                                     hyb_on_reply, &p, NULL),
                                  &(hyb_error){ 0 });
                        p.n++;
                }
                hyb_bus_flush(b);
                hyb_drain(b, &p);
                done += PIPE_DEPTH;
        }
        hyb_bus_set_cork(b, false);
        return (double)done / ((double)(bench_now_ns() - t0) / 1e9) / 1e3;
}

static struct {
        long expect;
        bool got;
        uint64_t t1;
} hs;

static void hyb_on_msg(const hyb_furi *target, const hyb_obj *payload, bool retain, void *ud)
{
        (void)target;
        (void)ud;
        hs.t1 = bench_now_ns();
        if (!retain || hyb_obj_get_kind(payload) != HYB_OBJ_INT ||
            hyb_obj_get_int(payload) != hs.expect)
                die("hybridd: the subscriber got another message than the one written", NULL);
        hs.got = true;
}

/* A retained write (storeWrite sent, not waited for) until the subscribing connection has
 * it; then the write's acknowledgement is read. */
static void hyb_delivery(hyb_bus *pub, hyb_bus *sub, double *lat, long n)
{
        char body[96];

        for (long i = -n / 10; i < n; i++) {
                hyb_pending p = { .n = 1 };
                uint64_t t0;

                snprintf(body, sizeof body, "%s\n%ld", TOPIC_FURI, i);
                hs.expect = i;
                hs.got = false;
                t0 = bench_now_ns();
                hyb_check("hybridd: storeWrite",
                          hyb_bus_call_async(pub, HYB_BUS_BUILTIN_ENDPOINT, "storeWrite", body,
                                             strlen(body), HYB_BODY_BINARY, 0, hyb_on_reply, &p,
                                             NULL),
                          &(hyb_error){ 0 });
                hyb_bus_flush(pub);
                while (!hs.got) {
                        int r = hyb_bus_process(sub);
                        if (r < 0)
                                die("hybridd: subscriber", hyb_strerror(r));
                        if (r == 0 && !hs.got && (r = hyb_bus_wait(sub, 5000000)) <= 0)
                                die("hybridd: a written value never reached the subscriber",
                                    NULL);
                }
                if (i >= 0)
                        lat[i] = (double)(hs.t1 - t0) / 1e3;
                hyb_drain(pub, &p);
                cpu_sample(&cw[S_HYB], i);
        }
}

static void hyb_round(int round, double *lat)
{
        static hyb_bus *c, *pub, *sub;
        static uint64_t rng = 0x9E3779B97F4A7C15ull;

        if (!c) {
                hyb_error e;

                hyb_error_clear(&e);
                c = hyb_open("client");
                pub = hyb_open("pub");
                sub = hyb_open("sub");
                hyb_preload(c);
                hyb_check("hybridd: hyb_bus_store_subscribe",
                          hyb_bus_store_subscribe(sub, TOPIC_FURI, 0, hyb_on_msg, NULL, NULL, &e),
                          &e);
                cw[S_HYB] = cpu_watch_open(hyb_bus_get_fd(c));
        }
        if (opt.rows & G_GET) {
                settle();
                hyb_latency(c, false, lat, opt.n_lat, &rng);
                val[R_GET50][S_HYB][round] = bench_percentile(lat, opt.n_lat, 50);
                val[R_GET99][S_HYB][round] = bench_percentile(lat, opt.n_lat, 99);
                cpu_report(&cw[S_HYB], round, rowdef[R_GET50].name, src_name[S_HYB]);
        }
        if (opt.rows & G_PUT) {
                settle();
                hyb_latency(c, true, lat, opt.n_lat, &rng);
                val[R_PUT50][S_HYB][round] = bench_percentile(lat, opt.n_lat, 50);
                val[R_PUT99][S_HYB][round] = bench_percentile(lat, opt.n_lat, 99);
                cpu_report(&cw[S_HYB], round, rowdef[R_PUT50].name, src_name[S_HYB]);
        }
        if (opt.rows & G_PIPE) {
                settle();
                val[R_PIPE][S_HYB][round] = hyb_pipelined(c, &rng);
        }
        if (opt.rows & G_DEL) {
                settle();
                hyb_delivery(pub, sub, lat, opt.n_lat);
                val[R_DEL50][S_HYB][round] = bench_percentile(lat, opt.n_lat, 50);
                val[R_DEL99][S_HYB][round] = bench_percentile(lat, opt.n_lat, 99);
                cpu_report(&cw[S_HYB], round, rowdef[R_DEL50].name, src_name[S_HYB]);
        }
}

/* ------------------------------------------------------------------ redis (hiredis) */

#ifdef HAVE_HIREDIS
static redisContext *redis_open(void)
{
        redisContext *c = redisConnectUnix(opt.redis);

        if (!c || c->err)
                die("redis: connect", c ? c->errstr : "out of memory");
        return c;
}

static redisReply *redis_cmd(redisContext *c, const char *fmt, ...)
{
        redisReply *rp;
        va_list ap;

        va_start(ap, fmt);
        rp = redisvCommand(c, fmt, ap);
        va_end(ap);
        if (!rp)
                die("redis: command", c->errstr);
        if (rp->type == REDIS_REPLY_ERROR)
                die("redis: error reply", rp->str);
        return rp;
}

static void redis_check_get(redisReply *rp)
{
        if (rp->type != REDIS_REPLY_STRING || rp->len == 0)
                die("redis: GET did not return the stored value", NULL);
        freeReplyObject(rp);
}

static void redis_check_ok(redisReply *rp)
{
        if (rp->type != REDIS_REPLY_STATUS || strcmp(rp->str, "OK") != 0)
                die("redis: SET did not answer OK", NULL);
        freeReplyObject(rp);
}

/* Every key, written in pipelined batches. */
static void redis_preload(redisContext *c)
{
        char key[96], v[32];

        freeReplyObject(redis_cmd(c, "FLUSHALL"));
        for (size_t i = 0; i < opt.keys; i += 1000) {
                size_t n = opt.keys - i < 1000 ? opt.keys - i : 1000;
                for (size_t k = 0; k < n; k++) {
                        key_name(key, sizeof key, i + k);
                        snprintf(v, sizeof v, "%.3f", 20.0 + (double)((i + k) % 256) / 8.0);
                        redisAppendCommand(c, "SET %s %s", key, v);
                }
                for (size_t k = 0; k < n; k++) {
                        redisReply *rp;
                        if (redisGetReply(c, (void **)&rp) != REDIS_OK)
                                die("redis: preload", c->errstr);
                        redis_check_ok(rp);
                }
        }
}

static void redis_latency(redisContext *c, bool put, double *lat, long n, uint64_t *rng)
{
        char key[96];

        for (long i = -n / 10; i < n; i++) {
                uint64_t x = bench_xorshift(rng), t0;
                redisReply *rp;

                key_name(key, sizeof key, x % opt.keys);
                t0 = bench_now_ns();
                if (put) {
                        rp = redis_cmd(c, "SET %s %.3f", key,
                                       20.0 + (double)((x >> 40) % 256) / 8.0);
                        redis_check_ok(rp);
                } else {
                        rp = redis_cmd(c, "GET %s", key);
                        redis_check_get(rp);
                }
                if (i >= 0)
                        lat[i] = (double)(bench_now_ns() - t0) / 1e3;
                cpu_sample(&cw[S_REDIS], i);
        }
}

static double redis_pipelined(redisContext *c, uint64_t *rng)
{
        char key[96];
        uint64_t t0 = bench_now_ns();
        long done = 0;

        while (done < opt.n_pipe) {
                for (int k = 0; k < PIPE_DEPTH; k++) {
                        key_name(key, sizeof key, bench_xorshift(rng) % opt.keys);
                        redisAppendCommand(c, "GET %s", key);
                }
                for (int k = 0; k < PIPE_DEPTH; k++) {
                        redisReply *rp;
                        if (redisGetReply(c, (void **)&rp) != REDIS_OK)
                                die("redis: pipelined GET", c->errstr);
                        redis_check_get(rp);
                }
                done += PIPE_DEPTH;
        }
        return (double)done / ((double)(bench_now_ns() - t0) / 1e9) / 1e3;
}

/* PUBLISH on one connection until the SUBSCRIBE connection has the message. */
static void redis_delivery(redisContext *pub, redisContext *sub, double *lat, long n)
{
        char payload[32];

        for (long i = -n / 10; i < n; i++) {
                redisReply *rp;
                uint64_t t0;
                int done = 0;

                snprintf(payload, sizeof payload, "%ld", i);
                t0 = bench_now_ns();
                redisAppendCommand(pub, "PUBLISH %s %s", TOPIC, payload);
                while (!done)
                        if (redisBufferWrite(pub, &done) != REDIS_OK)
                                die("redis: PUBLISH", pub->errstr);
                if (redisGetReply(sub, (void **)&rp) != REDIS_OK)
                        die("redis: subscriber", sub->errstr);
                if (i >= 0)
                        lat[i] = (double)(bench_now_ns() - t0) / 1e3;
                if (rp->type != REDIS_REPLY_ARRAY || rp->elements != 3 ||
                    strcmp(rp->element[0]->str, "message") != 0 ||
                    strcmp(rp->element[2]->str, payload) != 0)
                        die("redis: the subscriber got another message than the one published",
                            NULL);
                freeReplyObject(rp);
                if (redisGetReply(pub, (void **)&rp) != REDIS_OK)
                        die("redis: PUBLISH reply", pub->errstr);
                if (rp->type != REDIS_REPLY_INTEGER || rp->integer != 1)
                        die("redis: PUBLISH did not reach exactly one subscriber", NULL);
                freeReplyObject(rp);
                cpu_sample(&cw[S_REDIS], i);
        }
}

static void redis_round(int round, double *lat)
{
        static redisContext *c, *pub, *sub;
        static uint64_t rng = 0x9E3779B97F4A7C15ull;

        if (!c) {
                redisReply *rp;

                c = redis_open();
                pub = redis_open();
                sub = redis_open();
                redis_preload(c);
                rp = redis_cmd(sub, "SUBSCRIBE %s", TOPIC);
                if (rp->type != REDIS_REPLY_ARRAY)
                        die("redis: SUBSCRIBE", NULL);
                freeReplyObject(rp);
                cw[S_REDIS] = cpu_watch_open(c->fd);
        }
        if (opt.rows & G_GET) {
                settle();
                redis_latency(c, false, lat, opt.n_lat, &rng);
                val[R_GET50][S_REDIS][round] = bench_percentile(lat, opt.n_lat, 50);
                val[R_GET99][S_REDIS][round] = bench_percentile(lat, opt.n_lat, 99);
                cpu_report(&cw[S_REDIS], round, rowdef[R_GET50].name, src_name[S_REDIS]);
        }
        if (opt.rows & G_PUT) {
                settle();
                redis_latency(c, true, lat, opt.n_lat, &rng);
                val[R_PUT50][S_REDIS][round] = bench_percentile(lat, opt.n_lat, 50);
                val[R_PUT99][S_REDIS][round] = bench_percentile(lat, opt.n_lat, 99);
                cpu_report(&cw[S_REDIS], round, rowdef[R_PUT50].name, src_name[S_REDIS]);
        }
        if (opt.rows & G_PIPE) {
                settle();
                val[R_PIPE][S_REDIS][round] = redis_pipelined(c, &rng);
        }
        if (opt.rows & G_DEL) {
                settle();
                redis_delivery(pub, sub, lat, opt.n_lat);
                val[R_DEL50][S_REDIS][round] = bench_percentile(lat, opt.n_lat, 50);
                val[R_DEL99][S_REDIS][round] = bench_percentile(lat, opt.n_lat, 99);
                cpu_report(&cw[S_REDIS], round, rowdef[R_DEL50].name, src_name[S_REDIS]);
        }
}
#endif

/* ------------------------------------------------------------------ mosquitto (libmosquitto) */

#ifdef HAVE_MOSQUITTO
static struct {
        long expect;
        bool got, subscribed;
        uint64_t t1;
} mq;

static void on_message(struct mosquitto *m, void *ud, const struct mosquitto_message *msg)
{
        char want[32];

        (void)m;
        (void)ud;
        mq.t1 = bench_now_ns();
        snprintf(want, sizeof want, "%ld", mq.expect);
        if (msg->payloadlen != (int)strlen(want) || memcmp(msg->payload, want, strlen(want)) != 0)
                die("mosquitto: the subscriber got another message than the one published", NULL);
        mq.got = true;
}

static void on_subscribe(struct mosquitto *m, void *ud, int mid, int n, const int *granted)
{
        (void)m;
        (void)ud;
        (void)mid;
        if (n != 1 || granted[0] != 0)
                die("mosquitto: SUBSCRIBE refused", NULL);
        mq.subscribed = true;
}

static struct mosquitto *mosq_open(const char *id)
{
        struct mosquitto *m = mosquitto_new(id, true, NULL);
        int rc;

        if (!m)
                die("mosquitto: new", strerror(errno));
        /* port 0: the host is a Unix socket path */
        rc = mosquitto_connect(m, opt.mosq, 0, 600);
        if (rc != MOSQ_ERR_SUCCESS)
                die("mosquitto: connect", mosquitto_strerror(rc));
        return m;
}

static void mosq_loop(struct mosquitto *m, int timeout_ms)
{
        int rc = mosquitto_loop(m, timeout_ms, 1);

        if (rc != MOSQ_ERR_SUCCESS)
                die("mosquitto: loop", mosquitto_strerror(rc));
}

static void mosq_round(int round, double *lat)
{
        static struct mosquitto *pub, *sub;
        char payload[32];

        if (!pub) {
                mosquitto_lib_init();
                pub = mosq_open("bench-remote-store-pub");
                sub = mosq_open("bench-remote-store-sub");
                mosquitto_message_callback_set(sub, on_message);
                mosquitto_subscribe_callback_set(sub, on_subscribe);
                if (mosquitto_subscribe(sub, NULL, TOPIC, 0) != MOSQ_ERR_SUCCESS)
                        die("mosquitto: subscribe", NULL);
                for (int i = 0; i < 500 && !mq.subscribed; i++) {
                        mosq_loop(sub, 10);
                        mosq_loop(pub, 0);
                }
                if (!mq.subscribed)
                        die("mosquitto: no SUBACK", NULL);
                cw[S_MOSQ] = cpu_watch_open(mosquitto_socket(sub));
        }
        settle();
        for (long i = -opt.n_lat / 10; i < opt.n_lat; i++) {
                uint64_t t0;
                int rc;

                snprintf(payload, sizeof payload, "%ld", i);
                mq.expect = i;
                mq.got = false;
                t0 = bench_now_ns();
                /* without a loop thread, libmosquitto writes the packet in this call */
                rc = mosquitto_publish(pub, NULL, TOPIC, (int)strlen(payload), payload, 0, false);
                if (rc != MOSQ_ERR_SUCCESS)
                        die("mosquitto: publish", mosquitto_strerror(rc));
                for (int k = 0; !mq.got; k++) {
                        if (k == 1000)
                                die("mosquitto: a published message never arrived", NULL);
                        mosq_loop(sub, 10);
                }
                if (i >= 0)
                        lat[i] = (double)(mq.t1 - t0) / 1e3;
                mosq_loop(pub, 0); /* keep-alive and anything the broker sent it */
                cpu_sample(&cw[S_MOSQ], i);
        }
        cpu_report(&cw[S_MOSQ], round, rowdef[R_DEL50].name, src_name[S_MOSQ]);
        val[R_DEL50][S_MOSQ][round] = bench_percentile(lat, opt.n_lat, 50);
        val[R_DEL99][S_MOSQ][round] = bench_percentile(lat, opt.n_lat, 99);
}
#endif

/* ------------------------------------------------------------------ main */

/* "get,put,pipe,delivery" (any of them, in any order) as G_* bits. */
static unsigned parse_rows(const char *list)
{
        static const struct {
                const char *name;
                unsigned bit;
        } names[] = { { "get", G_GET }, { "put", G_PUT }, { "pipe", G_PIPE }, { "delivery", G_DEL } };
        unsigned rows = 0;

        while (*list) {
                size_t n = strcspn(list, ",");
                size_t k;

                for (k = 0; k < sizeof names / sizeof names[0]; k++)
                        if (strlen(names[k].name) == n && strncmp(names[k].name, list, n) == 0)
                                break;
                if (k == sizeof names / sizeof names[0])
                        die("--rows wants a list of get,put,pipe,delivery", list);
                rows |= names[k].bit;
                list += n;
                if (*list == ',')
                        list++;
        }
        if (!rows)
                die("--rows wants a list of get,put,pipe,delivery", NULL);
        return rows;
}

static void usage(FILE *f)
{
        fprintf(f, "usage: bench-remote-store [--quick] [--rounds N] [--keys K] [--ops N]\n"
                   "                          [--rows get,put,pipe,delivery]\n"
                   "                          [--hybridd SOCKET] [--redis SOCKET]\n"
                   "                          [--mosquitto SOCKET] [--verbose]\n"
                   "                          [--settle MS] [--cpu-report]\n"
                   "  --quick      smoke run: 3 rounds, 2 000 operations a figure, 10 000 keys\n"
                   "  --rounds N   rounds, the median of them is printed (default 5)\n"
                   "  --keys K     stored keys (default 100000)\n"
                   "  --ops N      operations a latency figure (default 20000; --quick 2000)\n"
                   "  --rows LIST  the rows measured, of get,put,pipe,delivery (default all)\n"
                   "  --hybridd S  the socket of a hybridd that serves its store\n"
                   "  --redis S    redis-server's Unix socket (run-remote-store.sh starts one)\n"
                   "  --mosquitto S  mosquitto's Unix listener\n"
                   "  --verbose    per-round figures on stderr\n"
                   "  --settle MS  idle pause before every measured row of every peer (default\n"
                   "               100; 0: none, each row starts right after the one before)\n"
                   "  --cpu-report a CPUS line per round, latency row and peer on stderr: of\n"
                   "               every 64th operation, how many found the benchmark and the\n"
                   "               daemon on one CPU\n");
}

int main(int argc, char **argv)
{
        static const struct option lo[] = {
                { "quick", no_argument, NULL, 'q' },     { "rounds", required_argument, NULL, 'r' },
                { "keys", required_argument, NULL, 'k' }, { "redis", required_argument, NULL, 'R' },
                { "hybridd", required_argument, NULL, 'H' },
                { "mosquitto", required_argument, NULL, 'M' },
                { "verbose", no_argument, NULL, 'v' },   { "help", no_argument, NULL, 'h' },
                { "ops", required_argument, NULL, 'o' }, { "rows", required_argument, NULL, 'w' },
                { "settle", required_argument, NULL, 's' },
                { "cpu-report", no_argument, NULL, 'c' },
                { 0 }
        };
        double *lat;
        long ops = 0;
        int c;

        while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
                switch (c) {
                case 'q':
                        /* in order: a later --rounds or --keys wins */
                        opt.quick = true;
                        opt.rounds = 3;
                        opt.keys = 10000;
                        break;
                case 'r':
                        opt.rounds = atoi(optarg);
                        if (opt.rounds < 1 || opt.rounds > MAX_ROUNDS)
                                die("--rounds wants 1 to 15", NULL);
                        break;
                case 'k':
                        opt.keys = strtoul(optarg, NULL, 10);
                        if (opt.keys < 1)
                                die("--keys wants at least 1", NULL);
                        break;
                case 'R':
                        opt.redis = optarg;
                        break;
                case 'H':
                        opt.hybridd = optarg;
                        break;
                case 'M':
                        opt.mosq = optarg;
                        break;
                case 'v':
                        opt.verbose = true;
                        break;
                case 'o':
                        ops = atol(optarg);
                        if (ops < 10)
                                die("--ops wants at least 10", NULL);
                        break;
                case 'w':
                        opt.rows = parse_rows(optarg);
                        break;
                case 's': {
                        char *end;
                        opt.settle_ms = strtol(optarg, &end, 10);
                        if (*optarg == '\0' || *end != '\0' || opt.settle_ms < 0 ||
                            opt.settle_ms > 10000)
                                die("--settle wants 0 to 10000 (milliseconds)", optarg);
                        break;
                }
                case 'c':
                        opt.cpu_report = true;
                        break;
                case 'h':
                        usage(stdout);
                        return 0;
                default:
                        usage(stderr);
                        return 2;
                }
        }
        opt.n_lat = ops ? ops : opt.quick ? 2000 : 20000;
        if (!opt.rows)
                opt.rows = G_ALL;
        opt.n_pipe = opt.quick ? 20000 : 200000;
        for (int r = 0; r < N_ROW; r++)
                for (int s = 0; s < N_SRC; s++)
                        for (int k = 0; k < MAX_ROUNDS; k++)
                                val[r][s][k] = NAN;
        lat = calloc((size_t)opt.n_lat, sizeof(*lat));
        if (!lat)
                die("calloc", strerror(ENOMEM));
#ifndef HAVE_HIREDIS
        if (opt.redis)
                fprintf(stderr, "bench-remote-store: built without hiredis: redis not measured\n");
        opt.redis = NULL;
#endif
#ifndef HAVE_MOSQUITTO
        if (opt.mosq)
                fprintf(stderr, "bench-remote-store: built without libmosquitto: mosquitto not "
                                "measured\n");
        opt.mosq = NULL;
#endif
        for (int round = 0; round < opt.rounds; round++) {
                /* hybridd and the peers take turns going first */
                for (int turn = 0; turn < 3; turn++) {
                        int who = (round + turn) % 3;
                        if (who == 2 && opt.hybridd)
                                hyb_round(round, lat);
#ifdef HAVE_HIREDIS
                        if (who == 0 && opt.redis)
                                redis_round(round, lat);
#endif
#ifdef HAVE_MOSQUITTO
                        if (who == 1 && opt.mosq && (opt.rows & G_DEL))
                                mosq_round(round, lat);
#endif
                        (void)who;
                }
                if (opt.verbose)
                        for (int r = 0; r < N_ROW; r++)
                                fprintf(stderr, "RESULT round=%d row=\"%s\" hybridd=%g redis=%g "
                                                "mosquitto=%g\n",
                                        round, rowdef[r].name, val[r][S_HYB][round],
                                        val[r][S_REDIS][round], val[r][S_MOSQ][round]);
        }
        free(lat);
        print_table();
        return 0;
}
