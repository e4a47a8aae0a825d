/* SPDX-License-Identifier: MIT */
/*
 * bench/bus.c - the hybrid bus (a real hybridd) beside the reference systems, same run.
 *
 * usage: bench-bus --hybridd PATH [--quick] [--rounds N] [--work DIR] [--anchors DIR]
 *                  [--dbus-daemon ADDR --dbus-daemon-pid PID] [--dbus-broker ADDR
 *                  --dbus-broker-pid PID] [--mosquitto SOCKET --mosquitto-pid PID
 *                  --mosquitto-port TCPPORT] [--verbose]
 *
 * bench/run-bus.sh builds everything, starts the peer daemons privately and calls this
 * with the right options (bench/README.md).
 *
 * Our side: hybridd is started once as a separate process (--foreground, private socket
 * and config in --work); every client is a separate process using only the public API
 * (hybrid/bus.h).  Peer side: the anchor programs of --anchors (uds_pingpong,
 * evrelay_bench, sdbus_bench, mosq_bench) are run as subprocesses and their RESULT lines
 * parsed; nothing of them is copied here.  Only the 1 000-idle-connection RSS of the D-Bus
 * daemons and mosquitto is measured in this process (with sd-bus and libmosquitto, when
 * the build found them), because no anchor does it.
 *
 * Rows (bench/README.md explains each): call RTT p50/p99 at 64 B, 1 KiB, 64 KiB; pipelined
 * calls/s with 32 in flight; event one-way latency; fan-out deliveries/s to 1, 4, 16
 * subscribers; broker RSS idle and with 1 000 idle authenticated connections.
 * Every figure is run in each of --rounds rounds (5); within a round ours and the peers
 * alternate and which goes first alternates too.  A value cell is the median over the
 * rounds; a ratio is the median of the per-round ratios ours/peer.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <hybrid/bus.h>

#ifdef HAVE_SDBUS
#include <systemd/sd-bus.h>
#endif
#ifdef HAVE_MOSQUITTO
#include <mosquitto.h>

#include "bench-util.h"
#endif

#define MAX_ROUNDS 15
#define WINDOW 32
#define N_IDLE 1000

/* ------------------------------------------------------------------ plumbing */

static struct {
        int rounds;
        bool quick, verbose;
        const char *hybridd, *anchors, *work;
        const char *dbusd, *dbusb, *mosq; /* addresses; NULL: peer not available */
        const char *mosq_port; /* loopback TCP port of the same mosquitto */
        pid_t dbusd_pid, dbusb_pid, mosq_pid;
        long n_rtt, n_big, n_event, n_fan;
} opt = { .rounds = 5 };

static char sock_path[512];
static pid_t hybridd_pid = -1;
static int name_seq;

static void die(const char *what, int r)
{
        fprintf(stderr, "bench-bus: %s: %s\n", what, r ? hyb_strerror(r) : strerror(errno));
        if (hybridd_pid > 0)
                kill(hybridd_pid, SIGTERM);
        exit(1);
}

static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void note(const char *fmt, ...)
{
        va_list ap;

        if (!opt.verbose)
                return;
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
}

static int cmp_u64(const void *a, const void *b)
{
        uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
        return (x > y) - (x < y);
}

/* Sorts ns samples; p50 and p99 in µs (the anchors' nearest-rank rule). */
static void percentiles(uint64_t *ns, size_t n, double *p50, double *p99)
{
        qsort(ns, n, sizeof ns[0], cmp_u64);
        *p50 = (double)ns[(size_t)(0.50 * (double)(n - 1) + 0.5)] / 1000.0;
        *p99 = (double)ns[(size_t)(0.99 * (double)(n - 1) + 0.5)] / 1000.0;
}

static void full_write(int fd, const void *buf, size_t len)
{
        const char *p = buf;

        while (len) {
                ssize_t w = write(fd, p, len);
                if (w < 0 && errno == EINTR)
                        continue;
                if (w <= 0)
                        die("pipe write", 0);
                p += w;
                len -= (size_t)w;
        }
}

static void full_read(int fd, void *buf, size_t len)
{
        char *p = buf;

        while (len) {
                ssize_t r = read(fd, p, len);
                if (r < 0 && errno == EINTR)
                        continue;
                if (r <= 0)
                        die("a helper process failed (pipe closed)", 0);
                p += r;
                len -= (size_t)r;
        }
}

static long rss_kb(pid_t pid)
{
        char path[64], line[256];
        long kb = -1;
        FILE *f;

        snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
        if (!(f = fopen(path, "re")))
                return -1;
        while (fgets(line, sizeof line, f))
                if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
                        break;
        fclose(f);
        return kb;
}

/* ------------------------------------------------------------------ the table */

enum { S_OURS, S_UDS, S_RELAY, S_DBUSD, S_DBUSB, S_MOSQ, N_SRC };
static const char *const src_name[N_SRC] = { "hybrid", "raw UDS", "ev relay", "dbus-daemon",
                                             "dbus-broker", "mosquitto" };

enum {
        R_RTT64_50, R_RTT64_99, R_RTT1K_50, R_RTT1K_99, R_RTT64K_50, R_RTT64K_99,
        R_PIPE, R_EV_50, R_EV_99, R_FAN1, R_FAN4, R_FAN16, R_FAN1E, R_FAN4E, R_FAN16E, R_RSS_IDLE, R_RSS_1000, R_RSS_PER,
        N_ROW
};
static const struct {
        const char *name, *unit, *fmt;
} rowdef[N_ROW] = {
        { "call RTT 64 B p50", "us", "%.1f" },       { "call RTT 64 B p99", "us", "%.1f" },
        { "call RTT 1 KiB p50", "us", "%.1f" },      { "call RTT 1 KiB p99", "us", "%.1f" },
        { "call RTT 64 KiB p50", "us", "%.1f" },     { "call RTT 64 KiB p99", "us", "%.1f" },
        { "pipelined calls (32 in flight)", "k/s", "%.1f" },
        { "event one-way p50", "us", "%.1f" },       { "event one-way p99", "us", "%.1f" },
        { "fan-out 1 sub", "k deliv/s", "%.1f" },     { "fan-out 4 subs", "k deliv/s", "%.1f" },
        { "fan-out 16 subs", "k deliv/s", "%.1f" },
        { "fan-out 1 sub, end to end", "k deliv/s", "%.1f" },
        { "fan-out 4 subs, end to end", "k deliv/s", "%.1f" },
        { "fan-out 16 subs, end to end", "k deliv/s", "%.1f" },
        { "broker RSS idle", "KiB", "%.0f" },         { "broker RSS 1000 idle conns", "KiB", "%.0f" },
        { "RSS per idle connection", "KiB", "%.1f" },
};

static double val[N_ROW][N_SRC][MAX_ROUNDS];

/* A target: ours relative to a peer (factor x peer) or absolute (peer < 0). */
static const struct {
        int row, peer;
        double bound;
        bool higher; /* true: ours >= bound is the pass */
        const char *text;
} targets[] = {
        { R_RTT64_50, S_RELAY, 1.1, false, "<= 1.1x relay" },
        { R_RTT64_50, S_DBUSB, 0.85, false, "<= 0.85x dbus-broker" },
        { R_RTT64K_50, S_DBUSD, 0.5, false, "<= 0.5x dbus-daemon" },
        { R_PIPE, -1, 150.0, true, ">= 150 k/s" },
        { R_PIPE, S_DBUSB, 2.5, true, ">= 2.5x dbus-broker" },
        { R_EV_50, S_MOSQ, 1.0, false, "<= 1.0x mosquitto" },
        { R_FAN1, S_MOSQ, 1.5, true, ">= 1.5x mosquitto" },
        { R_FAN4, S_MOSQ, 1.5, true, ">= 1.5x mosquitto" },
        { R_FAN16, S_MOSQ, 1.5, true, ">= 1.5x mosquitto" },
        { R_RSS_IDLE, -1, 4096.0, false, "<= 4 MB" },
        { R_RSS_PER, -1, 32.0, false, "<= 32 KB/conn" },
};

static void set(int row, int src, int round, double v)
{
        val[row][src][round] = v;
}

static void print_table(void)
{
        char cell[32];

        printf("\nhybrid bus vs peers: medians over %d rounds (ratio = median of per-round "
               "ours/peer)%s\n", opt.rounds, opt.quick ? "  [--quick: smoke figures only]" : "");
        printf("%-31s %-9s", "row", "unit");
        for (int s = 0; s < N_SRC; s++)
                printf(" %11s", src_name[s]);
        printf(" %7s  %-21s %s\n", "ratio", "target", "verdict");
        for (int r = 0; r < N_ROW; r++) {
                bool first = true;
                printf("%-31s %-9s", rowdef[r].name, rowdef[r].unit);
                for (int s = 0; s < N_SRC; s++) {
                        double m = bench_median(val[r][s], opt.rounds);
                        if (isnan(m))
                                snprintf(cell, sizeof cell, "-");
                        else
                                snprintf(cell, sizeof cell, rowdef[r].fmt, m);
                        printf(" %11s", cell);
                }
                for (size_t t = 0; t < sizeof targets / sizeof targets[0]; t++) {
                        double ratio, q[MAX_ROUNDS];
                        bool pass;

                        if (targets[t].row != r)
                                continue;
                        if (!first)
                                printf("\n%-41s%*s", "", N_SRC * 12, "");
                        first = false;
                        if (targets[t].peer < 0) {
                                ratio = bench_median(val[r][S_OURS], opt.rounds);
                                snprintf(cell, sizeof cell, "-");
                        } else {
                                for (int k = 0; k < opt.rounds; k++)
                                        q[k] = val[r][S_OURS][k] / val[r][targets[t].peer][k];
                                ratio = bench_median(q, opt.rounds);
                                snprintf(cell, sizeof cell, "%.2fx", ratio);
                        }
                        pass = targets[t].higher ? ratio >= targets[t].bound : ratio <= targets[t].bound;
                        printf(" %7s  %-21s %s", isnan(ratio) ? "-" : cell, targets[t].text,
                               isnan(ratio) ? "n/a" : pass ? "PASS" : "MISS");
                }
                printf("\n");
        }
        fflush(stdout);
}

/* ------------------------------------------------------------------ our daemon */

/* Starts hybridd on `sock` (a fresh process each time); dies when it does not come up. */
static pid_t start_hybridd(const char *sock)
{
        char cfg_path[512];
        pid_t pid;
        FILE *f;

        snprintf(cfg_path, sizeof cfg_path, "%s/hybridd-bench.yaml", opt.work);
        if (!(f = fopen(cfg_path, "we")))
                die(cfg_path, 0);
        /* Room for the 1 000 idle connections and the helpers, all of one uid, and for the
         * pipelined rows' queues (the quotas are measured by bench/hostile.sh instead). */
        fprintf(f, "limits:\n  max_connections: 2000\n  max_endpoints: 2000\n"
                   "  send_queue_bytes: 256M\n  max_memory: 4G\n  uid_max_bytes: 4G\n"
                   "  uid_max_connections: 2000\n  uid_max_unauth_connections: 2000\n"
                   "  max_unauth_connections: 2000\nlog:\n  level: warning\n");
        fclose(f);
        unlink(sock);
        if ((pid = fork()) < 0)
                die("fork", 0);
        if (pid == 0) {
                execl(opt.hybridd, opt.hybridd, "--foreground", "--socket", sock, "--config",
                      cfg_path, (char *)NULL);
                _exit(127);
        }
        for (int i = 0; i < 500; i++) {
                struct stat st;
                if (stat(sock, &st) == 0)
                        return pid;
                if (waitpid(pid, NULL, WNOHANG) == pid)
                        break;
                usleep(10000);
        }
        die("hybridd did not come up", 0);
        return -1;
}

static void stop_hybridd(pid_t pid)
{
        kill(pid, SIGTERM);
        waitpid(pid, NULL, 0);
}

static hyb_bus *connect_at(const char *path, const char *app, const char *runner)
{
        hyb_error err;
        hyb_bus *bus = NULL;
        int r;

        hyb_error_clear(&err);
        r = hyb_bus_connect(path, app, runner, &bus, &err);
        if (r < 0) {
                fprintf(stderr, "bench-bus: connect %s/%s: %s\n", app, runner, err.message);
                die("connect", r);
        }
        return bus;
}

static hyb_bus *connect_as(const char *app, const char *runner)
{
        return connect_at(sock_path, app, runner);
}

/* Unique runner names: a closed connection may still be known to the broker briefly. */
static const char *runner_name(char *buf, size_t len)
{
        snprintf(buf, len, "r%d_%d", (int)getpid(), name_seq++);
        return buf;
}

/* Runs the connection until *flag is set; timeout 0: forever. Returns false on timeout. */
static bool pump(hyb_bus *bus, volatile int *flag, uint64_t idle_ns)
{
        uint64_t last = bench_now_ns();

        while (!*flag) {
                int r = hyb_bus_process(bus);
                if (r < 0)
                        return false;
                if (r > 0) {
                        last = bench_now_ns();
                        continue;
                }
                r = hyb_bus_wait(bus, 200000);
                if (r < 0 && r != -EINTR)
                        return false;
                if (idle_ns && bench_now_ns() - last > idle_ns)
                        return false;
        }
        return true;
}

static void reap(pid_t pid)
{
        int st;

        if (waitpid(pid, &st, 0) == pid && !(WIFEXITED(st) && WEXITSTATUS(st) == 0) &&
            !(WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM))
                fprintf(stderr, "bench-bus: warning: helper %d ended with status %d\n", (int)pid, st);
}

/* ------------------------------------------------------------------ ours: calls */

static int on_echo(hyb_bus_request *req, void *ud)
{
        size_t len;
        const void *body = hyb_bus_request_get_body(req, &len);

        return hyb_bus_request_reply(req, 200, body, len, HYB_BODY_BINARY);
}

/* The callee process: @localhost/bench.echo/<runner> answering method echo. */
static pid_t start_echo_service(char *endpoint, size_t len)
{
        char runner[32];
        int p[2];
        pid_t pid;

        runner_name(runner, sizeof runner);
        snprintf(endpoint, len, "@localhost/bench.echo/%s", runner);
        if (pipe2(p, O_CLOEXEC) < 0 || (pid = fork()) < 0)
                die("fork", 0);
        if (pid == 0) {
                hyb_bus *bus = connect_as("bench.echo", runner);
                hyb_error err;
                int r, stop = 0;

                hyb_error_clear(&err);
                r = hyb_bus_register_procedure(bus, "echo", NULL, NULL, on_echo, NULL, NULL, &err);
                if (r < 0)
                        die("register echo", r);
                full_write(p[1], "R", 1);
                pump(bus, &stop, 0); /* until the broker or SIGTERM ends it */
                _exit(0);
        }
        close(p[1]);
        full_read(p[0], runner, 1);
        close(p[0]);
        return pid;
}

static long pending, completed;

static void on_reply(hyb_bus *bus, const hyb_bus_reply *reply, void *ud)
{
        if (hyb_bus_reply_get_status(reply) != 200)
                die("pipelined call", hyb_bus_reply_get_error(reply));
        pending--;
        completed++;
}

static void ours_calls(int round)
{
        static const struct {
                size_t size;
                int row;
        } sizes[] = { { 64, R_RTT64_50 }, { 1024, R_RTT1K_50 }, { 65536, R_RTT64K_50 } };
        char endpoint[128], runner[32];
        pid_t svc = start_echo_service(endpoint, sizeof endpoint);
        hyb_bus *bus = connect_as("bench.caller", runner_name(runner, sizeof runner));
        char *payload = malloc(65536);
        uint64_t *lat = malloc(sizeof(uint64_t) * (size_t)opt.n_rtt);
        hyb_error err;

        memset(payload, 'x', 65536);
        for (size_t k = 0; k < 3; k++) {
                long n = sizes[k].size == 65536 ? opt.n_big : opt.n_rtt, warm = n / 10;
                double p50, p99;
                for (long i = -warm; i < n; i++) {
                        hyb_bus_reply *reply = NULL;
                        size_t len;
                        uint64_t a = bench_now_ns();
                        int r = hyb_bus_call(bus, endpoint, "echo", payload, sizes[k].size,
                                             HYB_BODY_BINARY, 0, &reply, &err);
                        if (r < 0)
                                die("call", r);
                        if (i >= 0)
                                lat[i] = bench_now_ns() - a;
                        hyb_bus_reply_get_body(reply, &len);
                        if (len != sizes[k].size)
                                die("echo answered a wrong size", 0);
                        hyb_bus_reply_unref(reply);
                }
                percentiles(lat, (size_t)n, &p50, &p99);
                set(sizes[k].row, S_OURS, round, p50);
                set(sizes[k].row + 1, S_OURS, round, p99);
                note("  ours rtt %zu B: p50 %.1f p99 %.1f us\n", sizes[k].size, p50, p99);
        }

        /* pipelined: WINDOW async calls in flight, 64 B */
        long n = opt.n_rtt, sent = 0;
        pending = completed = 0;
        uint64_t t0 = bench_now_ns();
        while (completed < n) {
                while (sent < n && pending < WINDOW) {
                        int r = hyb_bus_call_async(bus, endpoint, "echo", payload, 64, HYB_BODY_BINARY,
                                                   0, on_reply, NULL, NULL);
                        if (r < 0)
                                die("call_async", r);
                        sent++;
                        pending++;
                }
                int r = hyb_bus_process(bus);
                if (r < 0)
                        die("process", r);
                if (r == 0 && (r = hyb_bus_wait(bus, UINT64_MAX)) < 0 && r != -EINTR)
                        die("wait", r);
        }
        double rate = (double)n * 1e9 / (double)(bench_now_ns() - t0);
        set(R_PIPE, S_OURS, round, rate / 1000.0);
        note("  ours pipelined: %.0f calls/s\n", rate);

        hyb_bus_unref(bus);
        kill(svc, SIGTERM);
        reap(svc);
        free(lat);
        free(payload);
}

/* ------------------------------------------------------------------ ours: events */

struct ev_ctx {
        hyb_bus *bus;
        uint64_t *lat;
        size_t nlat, cap;
        volatile int got, stop;
        uint64_t count, target, first, last;
};

/* Ponger: records the one-way latency of "ping" and fires "pong" back (mosq_bench rtt's shape). */
static void on_ping(hyb_bus *bus, const hyb_bus_event *ev, void *ud)
{
        struct ev_ctx *c = ud;
        size_t len;
        const void *body = hyb_bus_event_get_body(ev, &len);
        uint64_t ts;

        if (len == 4 && memcmp(body, "STOP", 4) == 0) {
                c->stop = 1;
                return;
        }
        if (len >= sizeof ts) {
                memcpy(&ts, body, sizeof ts);
                if (c->nlat < c->cap)
                        c->lat[c->nlat++] = bench_now_ns() - ts;
        }
        int r = hyb_bus_fire(bus, "pong", body, len, HYB_BODY_BINARY, NULL, NULL);
        if (r < 0)
                die("fire pong", r);
}

static void on_pong(hyb_bus *bus, const hyb_bus_event *ev, void *ud)
{
        ((struct ev_ctx *)ud)->got = 1;
}

static void subscribe_or_die(hyb_bus *bus, const char *ep, const char *bubble, hyb_bus_event_fn cb,
                             void *ud)
{
        hyb_error err;
        int r;

        hyb_error_clear(&err);
        r = hyb_bus_subscribe(bus, ep, bubble, cb, ud, NULL, &err);
        if (r < 0) {
                fprintf(stderr, "bench-bus: subscribe %s %s: %s\n", ep, bubble, err.message);
                die("subscribe", r);
        }
}

static void register_event_or_die(hyb_bus *bus, const char *bubble)
{
        hyb_error err;
        int r;

        hyb_error_clear(&err);
        r = hyb_bus_register_event(bus, bubble, NULL, NULL, NULL, &err);
        if (r < 0)
                die("register event", r);
}

static void ours_event(int round)
{
        char pinger[32], ponger[32], ep[128];
        int up[2], down[2];
        long n = opt.n_event, warm = n / 10;
        pid_t pid;

        runner_name(pinger, sizeof pinger);
        runner_name(ponger, sizeof ponger);
        if (pipe2(up, O_CLOEXEC) < 0 || pipe2(down, O_CLOEXEC) < 0 || (pid = fork()) < 0)
                die("fork", 0);
        if (pid == 0) {
                struct ev_ctx c = { .cap = (size_t)(n + warm) };
                double res[2];
                c.lat = malloc(sizeof(uint64_t) * c.cap);
                c.bus = connect_as("bench.ponger", ponger);
                register_event_or_die(c.bus, "pong");
                full_write(up[1], "R", 1);
                full_read(down[0], res, 1);
                snprintf(ep, sizeof ep, "@localhost/bench.pinger/%s", pinger);
                subscribe_or_die(c.bus, ep, "ping", on_ping, &c);
                full_write(up[1], "S", 1);
                if (!pump(c.bus, &c.stop, 10000000000ull))
                        _exit(3);
                size_t skip = c.nlat > (size_t)warm ? (size_t)warm : 0;
                percentiles(c.lat + skip, c.nlat - skip, &res[0], &res[1]);
                full_write(up[1], res, sizeof res);
                hyb_bus_unref(c.bus);
                _exit(0);
        }
        close(up[1]);
        close(down[0]);
        struct ev_ctx c = { 0 };
        char b, payload[64] = { 0 };
        double res[2];
        c.bus = connect_as("bench.pinger", pinger);
        register_event_or_die(c.bus, "ping");
        full_read(up[0], &b, 1);
        snprintf(ep, sizeof ep, "@localhost/bench.ponger/%s", ponger);
        subscribe_or_die(c.bus, ep, "pong", on_pong, &c);
        full_write(down[1], "G", 1);
        full_read(up[0], &b, 1);
        for (long i = -warm; i < n; i++) {
                uint64_t a = bench_now_ns();
                memcpy(payload, &a, sizeof a);
                c.got = 0;
                int r = hyb_bus_fire(c.bus, "ping", payload, sizeof payload, HYB_BODY_BINARY, NULL, NULL);
                if (r < 0)
                        die("fire ping", r);
                if (!pump(c.bus, &c.got, 5000000000ull))
                        die("no pong within 5 s", 0);
        }
        hyb_bus_fire(c.bus, "ping", "STOP", 4, HYB_BODY_BINARY, NULL, NULL);
        hyb_bus_flush(c.bus);
        full_read(up[0], res, sizeof res);
        set(R_EV_50, S_OURS, round, res[0]);
        set(R_EV_99, S_OURS, round, res[1]);
        note("  ours event one-way: p50 %.1f p99 %.1f us\n", res[0], res[1]);
        reap(pid);
        hyb_bus_unref(c.bus);
        close(up[0]);
        close(down[1]);
}

static void on_tick(hyb_bus *bus, const hyb_bus_event *ev, void *ud)
{
        struct ev_ctx *c = ud;
        uint64_t t = bench_now_ns();

        if (c->count == 0)
                c->first = t;
        c->last = t;
        if (++c->count >= c->target)
                c->stop = 1;
}

/* One generator fires n one-way events as fast as it can; each of k subscribers counts. */
static void ours_fanout(int round, int k, int row)
{
        char pub[32], ep[128];
        long n = k >= 16 ? opt.n_fan / 4 : opt.n_fan;
        int up[2], down[2];
        pid_t pids[16];

        runner_name(pub, sizeof pub);
        snprintf(ep, sizeof ep, "@localhost/bench.pub/%s", pub);
        if (pipe2(up, O_CLOEXEC) < 0 || pipe2(down, O_CLOEXEC) < 0)
                die("pipe", 0);
        for (int s = 0; s < k; s++) {
                char runner[32];
                runner_name(runner, sizeof runner);
                if ((pids[s] = fork()) < 0)
                        die("fork", 0);
                if (pids[s] != 0)
                        continue;
                struct ev_ctx c = { .target = (uint64_t)n };
                uint64_t res[3];
                char b;
                c.bus = connect_as("bench.sub", runner);
                full_read(down[0], &b, 1);
                subscribe_or_die(c.bus, ep, "tick", on_tick, &c);
                full_write(up[1], "R", 1);
                pump(c.bus, &c.stop, 3000000000ull); /* 3 s without an event: give up */
                res[0] = c.count;
                res[1] = c.first;
                res[2] = c.last;
                full_write(up[1], res, sizeof res);
                hyb_bus_unref(c.bus);
                _exit(0);
        }
        close(up[1]);
        close(down[0]);
        hyb_bus *bus = connect_as("bench.pub", pub);
        char payload[64] = { 0 }, b;
        register_event_or_die(bus, "tick");
        for (int s = 0; s < k; s++)
                full_write(down[1], "G", 1);
        for (int s = 0; s < k; s++)
                full_read(up[0], &b, 1);
        uint64_t t_start = bench_now_ns(), t_end = 0, got = 0;
        for (long i = 0; i < n; i++) {
                uint64_t a = bench_now_ns();
                memcpy(payload, &a, sizeof a);
                int r = hyb_bus_fire(bus, "tick", payload, sizeof payload, HYB_BODY_BINARY, NULL, NULL);
                if (r < 0)
                        die("fire", r);
                /* like mosq_bench: let the socket push back every 64 messages */
                if ((i & 63) == 63 && (r = hyb_bus_flush(bus)) < 0)
                        die("flush", r);
                while (hyb_bus_process(bus) > 0)
                        ;
        }
        hyb_bus_flush(bus);
        /* Subscriber 0 speaks for all, as in mosq_bench tput; the rest are checked for loss. */
        uint64_t res0[3] = { 0 }, lost = 0;
        for (int s = 0; s < k; s++) {
                uint64_t res[3];
                full_read(up[0], res, sizeof res);
                if (s == 0)
                        memcpy(res0, res, sizeof res);
                lost += (uint64_t)n - res[0];
                got += res[0];
                if (res[2] > t_end)
                        t_end = res[2];
        }
        for (int s = 0; s < k; s++)
                reap(pids[s]);
        hyb_bus_unref(bus);
        close(up[0]);
        close(down[1]);
        if (lost)
                fprintf(stderr, "bench-bus: warning: fan-out %d: %llu deliveries missing\n", k,
                        (unsigned long long)lost);
        if (res0[2] > res0[1]) {
                double rate = (double)k * (double)res0[0] * 1e9 / (double)(res0[2] - res0[1]);
                set(row, S_OURS, round, rate / 1000.0);
                /* stricter: every delivery, from the first fire to the last delivery anywhere */
                double e2e = (double)got * 1e9 / (double)(t_end - t_start);
                set(row + 3, S_OURS, round, e2e / 1000.0);
                note("  ours fan-out %d: %.0f deliveries/s (end to end %.0f)\n", k, rate, e2e);
        }
}

/* ------------------------------------------------------------------ RSS */

/*
 * A fresh hybridd for each round: a daemon that already routed traffic keeps its freed heap,
 * so new connections would reuse it and the per-connection figure would read ~0.
 */
static void ours_rss(int round)
{
        static hyb_bus *conns[N_IDLE];
        char sock[600];
        pid_t pid;
        long idle, full;

        snprintf(sock, sizeof sock, "%s/rss.sock", opt.work);
        pid = start_hybridd(sock);
        usleep(100000);
        idle = rss_kb(pid);
        for (int i = 0; i < N_IDLE; i++) {
                char runner[32];
                conns[i] = connect_at(sock, "bench.idle", runner_name(runner, sizeof runner));
        }
        usleep(200000);
        full = rss_kb(pid);
        for (int i = 0; i < N_IDLE; i++)
                conns[i] = hyb_bus_unref(conns[i]);
        stop_hybridd(pid);
        set(R_RSS_IDLE, S_OURS, round, (double)idle);
        set(R_RSS_1000, S_OURS, round, (double)full);
        set(R_RSS_PER, S_OURS, round, (double)(full - idle) / N_IDLE);
        note("  ours rss: idle %ld KiB, 1000 conns %ld KiB\n", idle, full);
}

#ifdef HAVE_MOSQUITTO
static void on_connack(struct mosquitto *m, void *ud, int rc)
{
        *(int *)ud = rc == 0 ? 1 : -1;
}
#endif

/* Idle RSS of a peer daemon, and with N_IDLE idle authenticated clients where we can make them. */
static void peer_rss(int round, int src, pid_t pid, const char *addr)
{
        long idle, full = -1;

        if (pid <= 0 || (idle = rss_kb(pid)) < 0)
                return;
        set(R_RSS_IDLE, src, round, (double)idle);
#ifdef HAVE_SDBUS
        if (src == S_DBUSD || src == S_DBUSB) {
                static sd_bus *conns[N_IDLE];
                int ok = 0;
                for (int i = 0; i < N_IDLE; i++) {
                        const char *unique;
                        conns[i] = NULL;
                        if (sd_bus_new(&conns[i]) < 0 || sd_bus_set_address(conns[i], addr) < 0 ||
                            sd_bus_set_bus_client(conns[i], 1) < 0 || sd_bus_start(conns[i]) < 0 ||
                            sd_bus_get_unique_name(conns[i], &unique) < 0)
                                break;
                        ok++;
                }
                usleep(200000);
                if (ok == N_IDLE)
                        full = rss_kb(pid);
                else
                        fprintf(stderr, "bench-bus: warning: %s took only %d connections\n",
                                src_name[src], ok);
                for (int i = 0; i < N_IDLE; i++)
                        conns[i] = sd_bus_flush_close_unref(conns[i]);
        }
#endif
#ifdef HAVE_MOSQUITTO
        if (src == S_MOSQ) {
                /* libmosquitto's loop uses select() and 3 fds per client: no fd may pass 1023,
                 * so 4 processes hold 250 clients each. */
                enum { PROCS = 4, PER = N_IDLE / PROCS };
                int up[2], down[2], ok = 0;
                pid_t pids[PROCS];
                if (pipe2(up, O_CLOEXEC) < 0 || pipe2(down, O_CLOEXEC) < 0)
                        die("pipe", 0);
                for (int p = 0; p < PROCS; p++) {
                        if ((pids[p] = fork()) < 0)
                                die("fork", 0);
                        if (pids[p] != 0)
                                continue;
                        static struct mosquitto *conns[PER];
                        static int acked[PER];
                        int n = 0;
                        char b;
                        mosquitto_lib_init();
                        /* one at a time: mosquitto's Unix listen backlog is 10 */
                        for (int i = 0; i < PER; i++) {
                                char id[48];
                                int rc = MOSQ_ERR_ERRNO;
                                snprintf(id, sizeof id, "bench-idle-%d-%d", (int)getpid(), i);
                                if (!(conns[i] = mosquitto_new(id, true, &acked[i])))
                                        break;
                                mosquitto_connect_callback_set(conns[i], on_connack);
                                for (int t = 0; t < 100 && rc != MOSQ_ERR_SUCCESS; t++)
                                        if ((rc = mosquitto_connect(conns[i], addr, 0, 600)) != MOSQ_ERR_SUCCESS)
                                                usleep(10000);
                                for (int t = 0; t < 100 && rc == MOSQ_ERR_SUCCESS && acked[i] == 0; t++)
                                        mosquitto_loop(conns[i], 20, 1);
                                n += acked[i] == 1;
                        }
                        full_write(up[1], &n, sizeof n);
                        full_read(down[0], &b, 1);
                        _exit(0); /* the kernel closes them all */
                }
                for (int p = 0; p < PROCS; p++) {
                        int n;
                        full_read(up[0], &n, sizeof n);
                        ok += n;
                }
                usleep(200000);
                if (ok == PROCS * PER)
                        full = rss_kb(pid);
                else
                        fprintf(stderr, "bench-bus: warning: mosquitto took only %d connections\n",
                                ok);
                for (int p = 0; p < PROCS; p++)
                        full_write(down[1], "X", 1);
                for (int p = 0; p < PROCS; p++)
                        reap(pids[p]);
                close(up[0]);
                close(up[1]);
                close(down[0]);
                close(down[1]);
        }
#endif
        (void)addr;
        usleep(500000); /* let the daemon drop them before the next figure */
        if (full > 0) {
                set(R_RSS_1000, src, round, (double)full);
                set(R_RSS_PER, src, round, (double)(full - idle) / N_IDLE);
        }
}

/* ------------------------------------------------------------------ peers: the anchors */

struct result {
        char name[96];
        double median, p99, rate;
};
static struct result results[16];
static int n_results;

static double field(const char *line, const char *key)
{
        const char *p = strstr(line, key);
        return p ? strtod(p + strlen(key), NULL) : NAN;
}

/* Runs an anchor program with extra environment (NAME=VALUE, NULL-terminated) and keeps its
 * RESULT lines. */
static void run_anchor(const char *const *env, const char *prog, ...)
{
        char path[512], line[1024];
        const char *argv[12];
        va_list ap;
        int p[2], n = 0;
        pid_t pid;
        FILE *f;

        n_results = 0;
        snprintf(path, sizeof path, "%s/%s", opt.anchors, prog);
        argv[n++] = path;
        va_start(ap, prog);
        while (n < 11 && (argv[n] = va_arg(ap, const char *)))
                n++;
        va_end(ap);
        argv[n] = NULL;
        if (pipe2(p, O_CLOEXEC) < 0 || (pid = fork()) < 0)
                die("fork", 0);
        if (pid == 0) {
                dup2(p[1], 1);
                for (int i = 0; env && env[i]; i++)
                        putenv((char *)env[i]);
                execv(path, (char *const *)argv);
                _exit(127);
        }
        close(p[1]);
        f = fdopen(p[0], "r");
        while (fgets(line, sizeof line, f)) {
                if (opt.verbose && strncmp(line, "RESULT", 6) != 0)
                        fprintf(stderr, "  [%s] %s", prog, line);
                if (strncmp(line, "WARN", 4) == 0)
                        fprintf(stderr, "bench-bus: %s: %s", prog, line);
                if (strncmp(line, "RESULT name=", 12) != 0 || n_results >= 16)
                        continue;
                struct result *r = &results[n_results++];
                sscanf(line + 12, "%95s", r->name);
                r->median = field(line, " median_us=");
                r->p99 = field(line, " p99_us=");
                r->rate = field(line, " rate_per_s=");
                note("  %s: median %.1f p99 %.1f rate %.0f\n", r->name, r->median, r->p99, r->rate);
        }
        fclose(f);
        reap(pid);
}

static const struct result *find(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static const struct result *find(const char *fmt, ...)
{
        char name[96];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(name, sizeof name, fmt, ap);
        va_end(ap);
        for (int i = 0; i < n_results; i++)
                if (strcmp(results[i].name, name) == 0)
                        return &results[i];
        fprintf(stderr, "bench-bus: warning: no RESULT %s\n", name);
        return NULL;
}

static void peer_calls(int round)
{
        static const struct {
                size_t size;
                int row;
        } sizes[] = { { 64, R_RTT64_50 }, { 1024, R_RTT1K_50 }, { 65536, R_RTT64K_50 } };
        char relay_sock[600], nbuf[32], sbuf[32];
        const struct result *res;

        snprintf(relay_sock, sizeof relay_sock, "%s/evrelay.sock", opt.work);
        for (size_t k = 0; k < 3; k++) {
                size_t sz = sizes[k].size;
                int row = sizes[k].row;
                snprintf(nbuf, sizeof nbuf, "%ld", sz == 65536 ? opt.n_big : opt.n_rtt);
                snprintf(sbuf, sizeof sbuf, "%zu", sz);

                run_anchor(NULL, "uds_pingpong", nbuf, sbuf, NULL);
                if ((res = find("uds_stream_%zuB_rtt", sz))) {
                        set(row, S_UDS, round, res->median);
                        set(row + 1, S_UDS, round, res->p99);
                }
                run_anchor(NULL, "evrelay_bench", nbuf, sbuf, relay_sock, NULL);
                if ((res = find("evrelay_call_rtt_%zuB", sz))) {
                        set(row, S_RELAY, round, res->median);
                        set(row + 1, S_RELAY, round, res->p99);
                }
                if (sz == 64 && (res = find("evrelay_call_pipelined_64B")))
                        set(R_PIPE, S_RELAY, round, res->rate / 1000.0);

                const char *addrs[2] = { opt.dbusd, opt.dbusb };
                static const char *const tags[2] = { "ANCHOR_TAG=dbusdaemon", "ANCHOR_TAG=dbusbroker" };
                for (int d = 0; d < 2; d++) {
                        const char *env[] = { tags[d], NULL };
                        int src = d ? S_DBUSB : S_DBUSD;
                        if (!addrs[d])
                                continue;
                        run_anchor(env, "sdbus_bench", "client", addrs[d], nbuf, sbuf, NULL);
                        if ((res = find("dbus_%s_call_rtt_%zuB", tags[d] + 11, sz))) {
                                set(row, src, round, res->median);
                                set(row + 1, src, round, res->p99);
                        }
                        if (sz == 64 && (res = find("dbus_%s_call_pipelined_64B", tags[d] + 11)))
                                set(R_PIPE, src, round, res->rate / 1000.0);
                }
                if (opt.mosq) {
                        const char *env[] = { "ANCHOR_TAG=unix", NULL };
                        run_anchor(env, "mosq_bench", "rtt", opt.mosq, "0", nbuf, sbuf, NULL);
                        if ((res = find("mqtt_unix_req_resp_rtt_%zuB", sz))) {
                                set(row, S_MOSQ, round, res->median);
                                set(row + 1, S_MOSQ, round, res->p99);
                        }
                        /* the echo side's one-way latency of the 64 B run is the event row */
                        if (sz == 64 && (res = find("mqtt_unix_pub_to_sub_oneway_64B"))) {
                                set(R_EV_50, S_MOSQ, round, res->median);
                                set(R_EV_99, S_MOSQ, round, res->p99);
                        }
                }
        }
}

static void peer_fanout(int round, int k, int row)
{
        char nbuf[32], subs[32];
        long n = k >= 16 ? opt.n_fan / 4 : opt.n_fan;
        const struct result *res;

        if (!opt.mosq)
                return;
        snprintf(nbuf, sizeof nbuf, "%ld", n);
        snprintf(subs, sizeof subs, "ANCHOR_SUBS=%d", k);
        /* mosquitto listens on its Unix socket with a backlog of 10: 16 subscribers connecting
         * at once get EAGAIN, so that row uses its loopback TCP listener (as the anchors' run script
         * does for every fan-out). */
        bool tcp = k > 8 && opt.mosq_port;
        const char *env[] = { tcp ? "ANCHOR_TAG=tcp" : "ANCHOR_TAG=unix", subs, NULL };
        run_anchor(env, "mosq_bench", "tput", tcp ? "127.0.0.1" : opt.mosq, tcp ? opt.mosq_port : "0",
                   nbuf, "64", NULL);
        if ((res = find("mqtt_%s_64B_%dsub_qos0_sub_rate", tcp ? "tcp" : "unix", k)) && res->rate > 0)
                set(row, S_MOSQ, round, (double)k * res->rate / 1000.0);
}

/* ------------------------------------------------------------------ main */

static void usage(FILE *f)
{
        fputs("usage: bench-bus --hybridd PATH [--quick] [--rounds N] [--work DIR] [--anchors DIR]\n"
              "       [--dbus-daemon ADDR --dbus-daemon-pid PID] [--dbus-broker ADDR --dbus-broker-pid PID]\n"
              "       [--mosquitto SOCKET --mosquitto-pid PID --mosquitto-port TCPPORT] [--verbose]\n"
              "Normally run through bench/run-bus.sh, which builds and starts the peers.\n", f);
}

int main(int argc, char **argv)
{
        static const struct option opts[] = {
                { "quick", no_argument, NULL, 'q' },      { "rounds", required_argument, NULL, 'n' },
                { "hybridd", required_argument, NULL, 'H' }, { "anchors", required_argument, NULL, 'a' },
                { "work", required_argument, NULL, 'w' }, { "dbus-daemon", required_argument, NULL, 1 },
                { "dbus-daemon-pid", required_argument, NULL, 2 },
                { "dbus-broker", required_argument, NULL, 3 },
                { "dbus-broker-pid", required_argument, NULL, 4 },
                { "mosquitto", required_argument, NULL, 5 },
                { "mosquitto-pid", required_argument, NULL, 6 },
                { "mosquitto-port", required_argument, NULL, 7 },
                { "verbose", no_argument, NULL, 'v' },    { "help", no_argument, NULL, 'h' },
                {},
        };
        char workbuf[] = "/tmp/bench-bus-XXXXXX";
        bool own_work = false;
        int c;

        while ((c = getopt_long(argc, argv, "qn:H:a:w:vh", opts, NULL)) != -1) {
                switch (c) {
                case 'q': opt.quick = true; break;
                case 'n': opt.rounds = atoi(optarg); break;
                case 'H': opt.hybridd = optarg; break;
                case 'a': opt.anchors = optarg; break;
                case 'w': opt.work = optarg; break;
                case 1: opt.dbusd = optarg; break;
                case 2: opt.dbusd_pid = atoi(optarg); break;
                case 3: opt.dbusb = optarg; break;
                case 4: opt.dbusb_pid = atoi(optarg); break;
                case 5: opt.mosq = optarg; break;
                case 6: opt.mosq_pid = atoi(optarg); break;
                case 7: opt.mosq_port = optarg; break;
                case 'v': opt.verbose = true; break;
                case 'h': usage(stdout); return 0;
                default: usage(stderr); return 2;
                }
        }
        if (!opt.hybridd || opt.rounds < 1 || opt.rounds > MAX_ROUNDS || optind < argc) {
                usage(stderr);
                return 2;
        }
        if (!opt.work) {
                if (!mkdtemp(workbuf))
                        die("mkdtemp", 0);
                opt.work = workbuf;
                own_work = true;
        }
        opt.n_rtt = opt.quick ? 2000 : 20000;
        opt.n_big = opt.quick ? 500 : 2000;
        opt.n_event = opt.quick ? 2000 : 20000;
        opt.n_fan = opt.quick ? 10000 : 60000;
        for (int r = 0; r < N_ROW; r++)
                for (int s = 0; s < N_SRC; s++)
                        for (int k = 0; k < MAX_ROUNDS; k++)
                                val[r][s][k] = NAN;

        /* 1 000 client sockets here, as many in hybridd (which inherits the limit). */
        struct rlimit rl;
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 8192) {
                rl.rlim_cur = rl.rlim_max < 8192 ? rl.rlim_max : 8192;
                setrlimit(RLIMIT_NOFILE, &rl);
        }
        signal(SIGPIPE, SIG_IGN);
        snprintf(sock_path, sizeof sock_path, "%s/hybridd.sock", opt.work);
        hybridd_pid = start_hybridd(sock_path);

        for (int round = 0; round < opt.rounds; round++) {
                fprintf(stderr, "bench-bus: round %d/%d\n", round + 1, opt.rounds);
                /* g counts the figure groups so that who goes first alternates both ways */
                for (int g = 0; g < 5; g++) {
                        for (int side = 0; side < 2; side++) {
                                bool ours = ((round + g) % 2) == side;
                                switch (g) {
                                case 0:
                                        if (ours) {
                                                ours_rss(round);
                                        } else if (round == 0) {
                                                /* only before any traffic: see ours_rss */
                                                peer_rss(round, S_DBUSD, opt.dbusd_pid, opt.dbusd);
                                                peer_rss(round, S_DBUSB, opt.dbusb_pid, opt.dbusb);
                                                peer_rss(round, S_MOSQ, opt.mosq_pid, opt.mosq);
                                        }
                                        break;
                                case 1:
                                        if (ours) {
                                                ours_calls(round);
                                                ours_event(round);
                                        } else if (opt.anchors) {
                                                peer_calls(round);
                                        }
                                        break;
                                case 2:
                                case 3:
                                case 4: {
                                        static const int ks[] = { 1, 4, 16 };
                                        static const int rows[] = { R_FAN1, R_FAN4, R_FAN16 };
                                        if (ours)
                                                ours_fanout(round, ks[g - 2], rows[g - 2]);
                                        else if (opt.anchors)
                                                peer_fanout(round, ks[g - 2], rows[g - 2]);
                                        break;
                                }
                                }
                        }
                }
        }
        stop_hybridd(hybridd_pid);
        if (own_work) {
                char path[600];
                snprintf(path, sizeof path, "%s/hybridd-bench.yaml", opt.work);
                unlink(path);
                rmdir(opt.work);
        }
        print_table();
        return 0;
}
