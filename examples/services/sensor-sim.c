/* SPDX-License-Identifier: MIT */
/*
 * hybrid-sensor-sim - simulated room sensors writing to the daemon's store
 * (doc/hybrid-sensor-sim.md).
 *
 *   hybrid-sensor-sim [--bus PATH] [--interval MS] [--sensors N] [--seed S]
 *                     [--threshold C] [--excursion K] [--count T] [--print]
 *
 * N rooms (default 3: kitchen, hall, bedroom, office, ...) each have a thermometer and a
 * hygrometer: every --interval ms (default 1000) each writes a retained reading to
 * /sensors/<room>/temp (degrees Celsius, a real) and /sensors/<room>/humidity (percent,
 * a real).  Readings follow a random walk from a seeded generator (xorshift64*), so a run
 * with the same --seed and --sensors writes the same sequence.  The temperatures stay
 * between 15 and 28; every --excursion ticks (default 10; 0: never) one room, chosen by
 * the generator, reads 1 to 4 degrees above --threshold (default 30) for one tick, so
 * rules watching for heat have something to fire on; it is logged as a warning for
 * hybrid-logd (hyb_log_send; stderr when none runs).  --count T stops after T ticks;
 * --print writes each reading to stdout as "<fURI> TAB <value>".
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hybrid/bus-store.h>
#include <hybrid/bus.h>
#include <hybrid/log.h>

#include "service.h"

#define PROG "hybrid-sensor-sim"
#define MAX_SENSORS 64

static const char *const room_names[] = {"kitchen", "hall",  "bedroom", "office",
                                         "bath",    "attic", "garage",  "cellar"};

typedef struct room {
        char name[16];
        double temp, humidity;
} room;

typedef struct sim {
        uint64_t rng;
        room rooms[MAX_SENSORS];
        unsigned n;
        double threshold;
        unsigned long excursion, ticks;
        unsigned long count; /* stop after this many ticks; 0: never */
        bool print;
} sim;

/* xorshift64* (Vigna): small, fast, and the same sequence on every platform. */
static uint64_t next_u64(sim *s)
{
        s->rng ^= s->rng >> 12;
        s->rng ^= s->rng << 25;
        s->rng ^= s->rng >> 27;
        return s->rng * 0x2545F4914F6CDD1DULL;
}

/* Uniform in [0, 1). */
static double uniform(sim *s)
{
        return (double)(next_u64(s) >> 11) * (1.0 / 9007199254740992.0);
}

static double clamp(double v, double lo, double hi)
{
        return v < lo ? lo : v > hi ? hi : v;
}

/* Readings are written with one decimal, as a thermometer shows them. */
static double tenth(double v)
{
        return round(v * 10) / 10;
}

static void sim_init(sim *s, uint64_t seed, unsigned n)
{
        /* splitmix64 of the seed: xorshift needs a non-zero state, and near seeds differ. */
        uint64_t z = seed + 0x9E3779B97F4A7C15ULL;

        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
        s->rng = (z ^ (z >> 31)) | 1;
        s->n = n;
        for (unsigned i = 0; i < n; i++) {
                room *r = &s->rooms[i];
                size_t nn = sizeof(room_names) / sizeof(room_names[0]);

                if (i < nn)
                        snprintf(r->name, sizeof(r->name), "%s", room_names[i]);
                else
                        snprintf(r->name, sizeof(r->name), "room%u", i + 1);
                r->temp = 18 + 5 * uniform(s);
                r->humidity = 35 + 20 * uniform(s);
        }
}

static int write_reading(sim *s, hyb_bus *bus, const char *where, const char *quantity, double v)
{
        char furi[64];
        hyb_obj *o = NULL;
        hyb_error e;
        int r;

        hyb_error_clear(&e);
        snprintf(furi, sizeof(furi), "/sensors/%s/%s", where, quantity);
        r = hyb_obj_new_real(v, &o);
        if (r >= 0)
                r = hyb_bus_store_write(bus, furi, o, 0, &e);
        hyb_obj_unref(o);
        if (r < 0) {
                fprintf(stderr, PROG ": write %s: %s %s\n", furi, hyb_err_name(r),
                        e.message[0] ? e.message : hyb_strerror(r));
                return r;
        }
        if (s->print) {
                printf("%s\t%.1f\n", furi, v);
                fflush(stdout);
        }
        return 0;
}

/* An excursion is news: a warning record for hybrid-logd (stderr when none runs). */
static void log_excursion(sim *s, hyb_bus *bus, const char *where, double celsius)
{
        char fields[128], message[96];

        snprintf(fields, sizeof(fields), "{\"room\":\"%s\",\"celsius\":%.1f,\"threshold\":%.1f}",
                 where, celsius, s->threshold);
        snprintf(message, sizeof(message), "%s reads %.1f C, above %.1f C", where, celsius,
                 s->threshold);
        /* Logging is best effort: the reading is written whatever happens to the record. */
        (void)hyb_log_send(bus, HYB_LOG_WARNING, fields, message);
}

/* One tick: every room's readings move a little; on an excursion tick one room reads hot. */
static int tick(sim *s, hyb_bus *bus)
{
        long hot = -1;
        int r = 0;

        s->ticks++;
        if (s->excursion && s->ticks % s->excursion == 0)
                hot = (long)(next_u64(s) % s->n);
        for (unsigned i = 0; i < s->n && r >= 0; i++) {
                room *rm = &s->rooms[i];
                double t;

                rm->temp = clamp(rm->temp + (uniform(s) - 0.5) * 0.6, 15, 28);
                rm->humidity = clamp(rm->humidity + (uniform(s) - 0.5) * 2, 20, 80);
                t = rm->temp;
                if ((long)i == hot)
                        t = s->threshold + 1 + 3 * uniform(s);
                r = write_reading(s, bus, rm->name, "temp", tenth(t));
                if (r >= 0)
                        r = write_reading(s, bus, rm->name, "humidity", tenth(rm->humidity));
                if (r >= 0 && (long)i == hot)
                        log_excursion(s, bus, rm->name, tenth(t));
        }
        return r;
}

/* The usage lines: on stderr for a usage error (2), on stdout for --help (0). */
static int usage_to(FILE *f, int status)
{
        fprintf(f, "usage: " PROG " [--bus PATH] [--interval MS] [--sensors N] [--seed S]\n"
                   "       [--threshold C] [--excursion K] [--count T] [--print]\n");
        if (status == 0)
                fprintf(f, "Simulated room sensors writing /sensors/...; see " PROG "(1).\n");
        return status;
}

static int usage(void)
{
        return usage_to(stderr, 2);
}

/* A decimal number in [lo, hi], whole. */
static bool parse_ulong(const char *text, unsigned long lo, unsigned long hi, unsigned long *ret)
{
        char *end = NULL;
        unsigned long v;

        errno = 0;
        if (!*text || *text == '-')
                return false;
        v = strtoul(text, &end, 10);
        if (errno || *end || v < lo || v > hi)
                return false;
        *ret = v;
        return true;
}

/* service_run's tick: a failed tick ends the run (1, or 3 when the bus is gone), so does --count. */
static int run_tick(hyb_bus *bus, void *userdata)
{
        sim *s = userdata;

        if (tick(s, bus) < 0)
                return hyb_bus_is_open(bus) ? 1 : 3;
        if (s->count && s->ticks >= s->count)
                return 0;
        return SERVICE_CONTINUE;
}

int main(int argc, char **argv)
{
        const char *path = getenv("HYBRID_BUS");
        unsigned long interval = 1000, sensors = 3, seed = 1, count = 0, excursion = 10;
        double threshold = 30;
        sim s = {0};
        hyb_bus *bus = NULL;
        char runner[32];
        int sfd, status;

        for (int i = 1; i < argc; i++) {
                const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
                char *end = NULL;

                if (strcmp(a, "--help") == 0)
                        return usage_to(stdout, 0);
                if (strcmp(a, "--print") == 0) {
                        s.print = true;
                        continue;
                }
                if (!v)
                        return usage();
                i++;
                if (strcmp(a, "--bus") == 0)
                        path = v;
                else if (strcmp(a, "--interval") == 0) {
                        if (!parse_ulong(v, 10, 3600000, &interval))
                                return usage();
                } else if (strcmp(a, "--sensors") == 0) {
                        if (!parse_ulong(v, 1, MAX_SENSORS, &sensors))
                                return usage();
                } else if (strcmp(a, "--seed") == 0) {
                        if (!parse_ulong(v, 0, ULONG_MAX, &seed))
                                return usage();
                } else if (strcmp(a, "--count") == 0) {
                        if (!parse_ulong(v, 1, ULONG_MAX, &count))
                                return usage();
                } else if (strcmp(a, "--excursion") == 0) {
                        if (!parse_ulong(v, 0, ULONG_MAX, &excursion))
                                return usage();
                } else if (strcmp(a, "--threshold") == 0) {
                        threshold = strtod(v, &end);
                        if (!end || *end || !isfinite(threshold) || threshold < -50 ||
                            threshold > 200)
                                return usage();
                } else
                        return usage();
        }
        if (path && !*path)
                path = NULL;
        sim_init(&s, seed, (unsigned)sensors);
        s.threshold = threshold;
        s.excursion = excursion;

        s.count = count;

        sfd = service_signals();
        if (sfd < 0)
                return 1;
        /* Several simulators may run at once: the runner is the pid. */
        snprintf(runner, sizeof(runner), "p%ld", (long)getpid());
        if (service_connect(PROG, path, "org.hybridos.sensorsim", runner, &bus) < 0) {
                close(sfd);
                return 3;
        }
        status = service_run(PROG, bus, sfd, hyb_now_usec(), (uint64_t)interval * 1000u, run_tick,
                             &s);
        hyb_bus_unref(bus);
        close(sfd);
        return status;
}
