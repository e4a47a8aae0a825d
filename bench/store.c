/* SPDX-License-Identifier: MIT */
/*
 * bench/store.c - the fURI tuple store beside raw SQLite doing the same work in the same run.
 *
 * usage: bench-store [--quick] [--runs N] [--secs S] [--keys K] [--dir DIR] [--rows IDS]
 *                    [--verbose] [--no-peer]
 *
 * Rows (bench/README.md explains each):
 *   in-memory get (read, equal fURIs,    memory store      vs SQLite ":memory:" table
 *     read_many x64)
 *   in-memory put                        memory store      vs SQLite ":memory:" table
 *   get from a persisted store           NORMAL store      vs SQLite WAL file point read
 *   put latency, normal / full           one writer        vs autocommit upsert, same sync
 *   group commit under full              4 threads / async vs 100-row transactions, FULL
 *   publish with 10 / 1 000 / 100 000    memory store      vs a linear match over every pattern
 *   subscriptions, ~10 matching
 *
 * Every figure is the median of --runs runs (5); within a run ours and the peer alternate
 * (which goes first alternates too), each for --secs seconds of work.  Timings are wall
 * clock (CLOCK_MONOTONIC).  Every operation's result is checked: a benchmark that times
 * failing calls measures nothing.  The peer tables are the anchors' shape
 * (sqlite_bench.c, see bench/README.md): key TEXT PRIMARY KEY, value TEXT, WITHOUT ROWID, WAL,
 * prepared statements, in the same temporary directory as our databases.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

#include <sqlite3.h>

#include <hybrid/store.h>

#include "bench-util.h"

#define MAX_RUNS 15
#define N_VALUES 256

/* ------------------------------------------------------------------ plumbing */

static struct {
        int runs;
        double secs;
        size_t keys;
        bool quick, verbose, no_peer;
        const char *rows;
        char dir[512];
} cfg = { .runs = 5, .secs = 0.8, .keys = 100000 };

static void die(const char *what, int r, const hyb_error *e)
{
        fprintf(stderr, "bench-store: %s: %s%s%s\n", what, hyb_strerror(r),
                e && e->message[0] ? ": " : "", e && e->message[0] ? e->message : "");
        exit(1);
}

static void check(const char *what, int r, const hyb_error *e)
{
        if (r < 0)
                die(what, r, e);
}

static int cmp_u64(const void *a, const void *b)
{
        uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

        return (x > y) - (x < y);
}

/* Latency samples of one run; the figure of a latency run is its median. */
typedef struct samples {
        uint64_t *ns;
        size_t n, alloc;
} samples;

static void samples_add(samples *s, uint64_t ns)
{
        if (s->n == s->alloc) {
                s->alloc = s->alloc ? s->alloc * 2 : 4096;
                s->ns = realloc(s->ns, s->alloc * sizeof(uint64_t));
                if (!s->ns)
                        die("realloc", -ENOMEM, NULL);
        }
        s->ns[s->n++] = ns;
}

static double samples_median_us(samples *s)
{
        double m;

        qsort(s->ns, s->n, sizeof(uint64_t), cmp_u64);
        m = s->n ? (double)s->ns[s->n / 2] / 1000.0 : NAN;
        free(s->ns);
        *s = (samples){ 0 };
        return m;
}

/* ------------------------------------------------------------------ the table */

typedef enum target_kind {
        T_NONE,
        T_MIN,          /* ours >= target (absolute, in the row's unit) */
        T_MAX_PEER,     /* ours / peer <= target */
        T_MAX_BASE,     /* ours / base row's ours <= target */
} target_kind;

typedef struct row {
        const char *id, *name, *unit, *peer_name;
        double ours[MAX_RUNS], peer[MAX_RUNS];
        int n;
        double m_ours, m_peer;
        target_kind tk;
        double target;
        const struct row *base;
        char note[96];
        bool done;
} row;

/* --rows: comma-separated ids; a word ending in '-' selects every id starting with it. */
static bool selected(const char *id)
{
        const char *w = cfg.rows;

        if (!w)
                return true;
        while (*w) {
                size_t n = strcspn(w, ",");
                if ((n == strlen(id) && strncmp(w, id, n) == 0) ||
                    (n > 0 && w[n - 1] == '-' && strncmp(w, id, n) == 0))
                        return true;
                w += n + (w[n] == ',');
        }
        return false;
}

typedef double (*measure_fn)(void *ctx);

/* Runs ours and the peer cfg.runs times, alternating which goes first. */
static void run_pair(row *r, measure_fn fo, void *co, measure_fn fp, void *cp)
{
        if (cfg.no_peer)
                fp = NULL;
        fprintf(stderr, "  %-40s", r->name);
        for (int i = 0; i < cfg.runs; i++) {
                if (i % 2 == 0) {
                        r->ours[i] = fo(co);
                        r->peer[i] = fp ? fp(cp) : NAN;
                } else {
                        r->peer[i] = fp ? fp(cp) : NAN;
                        r->ours[i] = fo(co);
                }
                fputc('.', stderr);
        }
        fputc('\n', stderr);
        r->n = cfg.runs;
        r->m_ours = bench_median(r->ours, (size_t)r->n);
        r->m_peer = fp ? bench_median(r->peer, (size_t)r->n) : NAN;
        r->done = true;
}

static void fmt_value(char *buf, size_t n, double v, const char *unit)
{
        if (isnan(v))
                snprintf(buf, n, "-");
        else if (strcmp(unit, "ops/s") == 0 && v >= 1e6)
                snprintf(buf, n, "%.2f M/s", v / 1e6);
        else if (strcmp(unit, "ops/s") == 0)
                snprintf(buf, n, "%.1f k/s", v / 1e3);
        else if (strcmp(unit, "us") == 0)
                snprintf(buf, n, "%.1f us", v);
        else
                snprintf(buf, n, "%.0f %s", v, unit);
}

static void print_table(row *rows, size_t n_rows)
{
        printf("\n%-34s %12s %12s  %-34s %6s  %-16s %s\n", "figure (median of runs)", "libhybrid",
               "peer", "peer is", "ratio", "target", "result");
        for (size_t i = 0; i < n_rows; i++) {
                row *r = &rows[i];
                char o[32], p[32], tgt[40] = "-", res[48] = "", ratio[16] = "-";
                double x = NAN;

                if (!r->done)
                        continue;
                fmt_value(o, sizeof o, r->m_ours, r->unit);
                fmt_value(p, sizeof p, r->m_peer, r->unit);
                if (!isnan(r->m_peer) && r->m_peer > 0)
                        snprintf(ratio, sizeof ratio, "%.2f", r->m_ours / r->m_peer);
                switch (r->tk) {
                case T_NONE:
                        break;
                case T_MIN:
                        x = r->m_ours / r->target;
                        fmt_value(tgt, sizeof tgt, r->target, r->unit);
                        memmove(tgt + 3, tgt, strlen(tgt) + 1);
                        memcpy(tgt, ">= ", 3);
                        snprintf(res, sizeof res, "%s (%.2fx the target)", x >= 1 ? "PASS" : "MISS",
                                 x);
                        break;
                case T_MAX_PEER:
                        x = r->m_ours / r->m_peer;
                        snprintf(tgt, sizeof tgt, "<= %.1fx peer", r->target);
                        if (isnan(x))
                                snprintf(res, sizeof res, "(peer not run)");
                        else
                                snprintf(res, sizeof res, "%s (%.2fx peer)",
                                         x <= r->target ? "PASS" : "MISS", x);
                        break;
                case T_MAX_BASE:
                        x = r->base->done ? r->m_ours / r->base->m_ours : NAN;
                        snprintf(tgt, sizeof tgt, "<= %.0fx N=10", r->target);
                        if (isnan(x))
                                snprintf(res, sizeof res, "(N=10 row not run)");
                        else
                                snprintf(res, sizeof res, "%s (%.2fx N=10)",
                                         x <= r->target ? "PASS" : "MISS", x);
                        break;
                }
                printf("%-34s %12s %12s  %-34s %6s  %-16s %s\n", r->name, o, p, r->peer_name, ratio,
                       tgt, res);
        }
        printf("ratio = libhybrid / peer (rates: higher is better; times: lower is better)\n");
        for (size_t i = 0; i < n_rows; i++)
                if (rows[i].done && rows[i].note[0])
                        printf("note: %s: %s\n", rows[i].name, rows[i].note);
        if (cfg.verbose)
                for (size_t i = 0; i < n_rows; i++) {
                        if (!rows[i].done)
                                continue;
                        printf("RESULT id=%s unit=%s ours=", rows[i].id, rows[i].unit);
                        for (int j = 0; j < rows[i].n; j++)
                                printf("%s%.4g", j ? "," : "", rows[i].ours[j]);
                        printf(" peer=");
                        for (int j = 0; j < rows[i].n; j++)
                                printf("%s%.4g", j ? "," : "", rows[i].peer[j]);
                        printf("\n");
                }
}

/* ------------------------------------------------------------------ shared data */

static hyb_furi **keys;         /* /sensors/room<r>/dev<d>/m<m>, cfg.keys of them */
static hyb_furi **keys_equal;   /* the same keys parsed again (mem-get-equal), or NULL */
static char **key_text;
static hyb_obj *vals[N_VALUES]; /* reals 20.0, 20.125, ... */
static char *val_text[N_VALUES]; /* their EXACT text: what the store puts in its value column */

static void make_data(void)
{
        char buf[128];
        hyb_error e;

        keys = calloc(cfg.keys, sizeof(*keys));
        key_text = calloc(cfg.keys, sizeof(*key_text));
        if (!keys || !key_text)
                die("calloc", -ENOMEM, NULL);
        for (size_t i = 0; i < cfg.keys; i++) {
                snprintf(buf, sizeof buf, "/sensors/room%zu/dev%zu/m%zu", i / 400, i / 20 % 20,
                         i % 20);
                check("parse key", hyb_furi_parse(buf, (size_t)-1, NULL, &keys[i], &e), &e);
                key_text[i] = strdup(hyb_furi_get_str(keys[i]));
        }
        for (int i = 0; i < N_VALUES; i++) {
                check("new real", hyb_obj_new_real(20.0 + i / 8.0, &vals[i]), NULL);
                check("format", hyb_obj_format(vals[i], HYB_FORMAT_EXACT, &val_text[i]), NULL);
        }
}

static void free_data(void)
{
        for (size_t i = 0; i < cfg.keys; i++) {
                hyb_furi_unref(keys[i]);
                free(key_text[i]);
        }
        for (size_t i = 0; keys_equal && i < cfg.keys; i++)
                hyb_furi_unref(keys_equal[i]);
        free(keys_equal);
        free(keys);
        free(key_text);
        for (int i = 0; i < N_VALUES; i++) {
                hyb_obj_unref(vals[i]);
                hyb_free(val_text[i]);
        }
}

/* ------------------------------------------------------------------ our store */

typedef struct ours {
        hyb_store *st;
        uint64_t rng;
} ours;

static void ours_open(ours *o, const char *file, hyb_durability d)
{
        hyb_store_options opts;
        char path[700];
        hyb_error e;

        hyb_store_options_init(&opts);
        opts.durability = d;
        snprintf(path, sizeof path, "%s/%s", cfg.dir, file ? file : "");
        check("hyb_store_open", hyb_store_open(file ? path : NULL, &opts, &o->st, &e), &e);
        o->rng = 0x9E3779B97F4A7C15ull;
        /* Preload every key: async writes share one commit, then flush. */
        for (size_t i = 0; i < cfg.keys; i++)
                check("preload", hyb_store_write_async(o->st, keys[i], vals[i % N_VALUES], 0, NULL,
                                                       NULL, &e),
                      &e);
        check("flush", hyb_store_flush(o->st), NULL);
        while (hyb_store_process(o->st) > 0)
                ;
}

/* Random node reads through hyb_store_read of the given fURIs. */
static double ours_get_of(ours *o, hyb_furi **ks)
{
        uint64_t t0 = bench_now_ns(), end = t0 + (uint64_t)(cfg.secs * 1e9), n = 0, t;
        hyb_error e;

        do {
                for (int i = 0; i < 256; i++) {
                        hyb_obj *v = NULL;
                        int r = hyb_store_read(o->st, ks[bench_xorshift(&o->rng) % cfg.keys], &v, &e);
                        if (r < 0 || hyb_obj_get_kind(v) != HYB_OBJ_REAL)
                                die("hyb_store_read (or not the stored real)", r, &e);
                        hyb_obj_unref(v);
                }
                n += 256;
        } while ((t = bench_now_ns()) < end);
        return (double)n * 1e9 / (double)(t - t0);
}

/* How many keys one hyb_store_read_many call of the mem-get-many row reads. */
#define GET_BATCH 64

/* The same random reads through hyb_store_read_many, GET_BATCH keys a call: what a program
 * reading many keys at once calls. */
static double ours_get_many_of(void *ctx, hyb_furi **from)
{
        ours *o = ctx;
        uint64_t t0 = bench_now_ns(), end = t0 + (uint64_t)(cfg.secs * 1e9), n = 0, t;
        hyb_furi *batch[GET_BATCH];
        hyb_obj *v[GET_BATCH];
        hyb_error e;

        do {
                for (int j = 0; j < 256 / GET_BATCH; j++) {
                        int r;
                        for (int i = 0; i < GET_BATCH; i++)
                                batch[i] = from[bench_xorshift(&o->rng) % cfg.keys];
                        r = hyb_store_read_many(o->st, batch, GET_BATCH, v, &e);
                        if (r < 0)
                                die("hyb_store_read_many", r, &e);
                        for (int i = 0; i < GET_BATCH; i++) {
                                if (hyb_obj_get_kind(v[i]) != HYB_OBJ_REAL)
                                        die("hyb_store_read_many (not the stored real)", 0, NULL);
                                hyb_obj_unref(v[i]);
                        }
                }
                n += 256;
        } while ((t = bench_now_ns()) < end);
        return (double)n * 1e9 / (double)(t - t0);
}

/* With the key objects the preload wrote: what a program keeping its parsed keys reads. */
static double ours_get(void *ctx)
{
        return ours_get_of(ctx, keys);
}

static double ours_get_many(void *ctx)
{
        return ours_get_many_of(ctx, keys);
}

/* Equal fURIs parsed apart from the written ones (a reader that parsed its own keys): the
 * store cannot find them by address and takes its hash lookup. */
static hyb_furi **equal_keys(void)
{
        hyb_error e;

        if (!keys_equal) {
                keys_equal = calloc(cfg.keys, sizeof(*keys_equal));
                if (!keys_equal)
                        die("calloc", -ENOMEM, NULL);
                for (size_t i = 0; i < cfg.keys; i++)
                        check("parse key", hyb_furi_parse(key_text[i], (size_t)-1, NULL,
                                                          &keys_equal[i], &e),
                              &e);
        }
        return keys_equal;
}

static double ours_get_equal(void *ctx)
{
        return ours_get_of(ctx, equal_keys());
}

static double ours_get_many_equal(void *ctx)
{
        return ours_get_many_of(ctx, equal_keys());
}

static double ours_put_rate(void *ctx)
{
        ours *o = ctx;
        uint64_t t0 = bench_now_ns(), end = t0 + (uint64_t)(cfg.secs * 1e9), n = 0, t;
        hyb_error e;

        do {
                for (int i = 0; i < 256; i++) {
                        uint64_t x = bench_xorshift(&o->rng);
                        check("hyb_store_write", hyb_store_write(o->st, keys[x % cfg.keys],
                                                                 vals[(x >> 40) % N_VALUES], 0, &e),
                              &e);
                }
                n += 256;
        } while ((t = bench_now_ns()) < end);
        return (double)n * 1e9 / (double)(t - t0);
}

static double ours_put_latency(void *ctx)
{
        ours *o = ctx;
        uint64_t end = bench_now_ns() + (uint64_t)(cfg.secs * 1e9), a, b;
        samples s = { 0 };
        hyb_error e;

        do {
                uint64_t x = bench_xorshift(&o->rng);
                a = bench_now_ns();
                check("hyb_store_write", hyb_store_write(o->st, keys[x % cfg.keys],
                                                         vals[(x >> 40) % N_VALUES], 0, &e),
                      &e);
                b = bench_now_ns();
                samples_add(&s, b - a);
        } while (b < end || s.n < 20);
        return samples_median_us(&s);
}

/* Group commit, 4 threads each writing synchronously (one write in flight per thread). */
typedef struct gc_thread {
        pthread_t tid;
        hyb_store *st;
        atomic_bool *stop;
        uint64_t rng, n;
} gc_thread;

static void *gc_writer(void *arg)
{
        gc_thread *t = arg;
        hyb_error e;

        while (!atomic_load_explicit(t->stop, memory_order_relaxed)) {
                uint64_t x = bench_xorshift(&t->rng);
                check("hyb_store_write (thread)",
                      hyb_store_write(t->st, keys[x % cfg.keys], vals[(x >> 40) % N_VALUES], 0, &e),
                      &e);
                t->n++;
        }
        return NULL;
}

static double ours_gc_threads(void *ctx)
{
        ours *o = ctx;
        gc_thread th[4];
        atomic_bool stop = false;
        uint64_t t0, t1, n = 0;
        struct timespec d = { .tv_sec = (time_t)cfg.secs,
                              .tv_nsec = (long)((cfg.secs - (double)(time_t)cfg.secs) * 1e9) };

        t0 = bench_now_ns();
        for (int i = 0; i < 4; i++) {
                th[i] = (gc_thread){ .st = o->st, .stop = &stop, .rng = bench_xorshift(&o->rng) | 1 };
                if (pthread_create(&th[i].tid, NULL, gc_writer, &th[i]) != 0)
                        die("pthread_create", -errno, NULL);
        }
        nanosleep(&d, NULL);
        atomic_store(&stop, true);
        for (int i = 0; i < 4; i++) {
                pthread_join(th[i].tid, NULL);
                n += th[i].n;
        }
        t1 = bench_now_ns();
        return (double)n * 1e9 / (double)(t1 - t0);
}

/* Group commit through the async API: one producer keeps up to `window` writes in flight;
 * this thread runs the store's loop (hyb_store_wait), which commits what is queued and runs
 * the completions.  A write counts once its completion ran (acknowledged = committed). */
typedef struct gc_async {
        ours *o;
        unsigned window;
        sem_t room;
        atomic_bool stop;
        atomic_uint_fast64_t issued, acked;
} gc_async;

static void gc_done(int r, void *ud)
{
        gc_async *g = ud;

        if (r < 0)
                die("async write completion", r, NULL);
        atomic_fetch_add(&g->acked, 1);
        sem_post(&g->room);
}

static void *gc_producer(void *arg)
{
        gc_async *g = arg;
        uint64_t rng = bench_xorshift(&g->o->rng) | 1;
        hyb_error e;

        while (!atomic_load(&g->stop)) {
                uint64_t x = bench_xorshift(&rng);
                while (sem_wait(&g->room) < 0 && errno == EINTR)
                        ;
                check("hyb_store_write_async",
                      hyb_store_write_async(g->o->st, keys[x % cfg.keys], vals[(x >> 40) % N_VALUES],
                                            0, gc_done, g, &e),
                      &e);
                atomic_fetch_add(&g->issued, 1);
        }
        return NULL;
}

static double ours_gc_async(void *ctx)
{
        gc_async *g = ctx;
        pthread_t tid;
        uint64_t t0, end, t;

        atomic_store(&g->stop, false);
        atomic_store(&g->issued, 0);
        atomic_store(&g->acked, 0);
        sem_init(&g->room, 0, g->window);
        t0 = bench_now_ns();
        end = t0 + (uint64_t)(cfg.secs * 1e9);
        if (pthread_create(&tid, NULL, gc_producer, g) != 0)
                die("pthread_create", -errno, NULL);
        while (bench_now_ns() < end)
                check("hyb_store_wait", hyb_store_wait(g->o->st, 10000), NULL);
        atomic_store(&g->stop, true);
        sem_post(&g->room); /* a producer blocked on a full window wakes and sees stop */
        pthread_join(tid, NULL);
        while (atomic_load(&g->acked) < atomic_load(&g->issued))
                check("hyb_store_wait", hyb_store_wait(g->o->st, 10000), NULL);
        t = bench_now_ns();
        sem_destroy(&g->room);
        return (double)atomic_load(&g->acked) * 1e9 / (double)(t - t0);
}

/* ------------------------------------------------------------------ raw SQLite */

typedef struct peer {
        sqlite3 *db;
        sqlite3_stmt *get, *get_many, *put, *begin, *commit;
        uint64_t rng;
        uint8_t *seen;  /* get_many: a bit per key, to count a batch's distinct keys */
} peer;

static void sql_die(peer *p, const char *what)
{
        fprintf(stderr, "bench-store: sqlite %s: %s\n", what, sqlite3_errmsg(p->db));
        exit(1);
}

static void sql_exec(peer *p, const char *sql)
{
        if (sqlite3_exec(p->db, sql, NULL, NULL, NULL) != SQLITE_OK)
                sql_die(p, sql);
}

static sqlite3_stmt *sql_prep(peer *p, const char *sql)
{
        sqlite3_stmt *s;

        if (sqlite3_prepare_v3(p->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s, NULL) != SQLITE_OK)
                sql_die(p, sql);
        return s;
}

static void sql_step_done(peer *p, sqlite3_stmt *s)
{
        if (sqlite3_step(s) != SQLITE_DONE)
                sql_die(p, "step");
        sqlite3_reset(s);
}

static void peer_put(peer *p, size_t k, size_t v)
{
        sqlite3_bind_text(p->put, 1, key_text[k], -1, SQLITE_STATIC);
        sqlite3_bind_text(p->put, 2, val_text[v], -1, SQLITE_STATIC);
        sql_step_done(p, p->put);
}

/* file NULL: ":memory:".  sync: "NORMAL" or "FULL". */
static void peer_open(peer *p, const char *file, const char *sync)
{
        char path[700], pragma[64];

        snprintf(path, sizeof path, "%s/%s", cfg.dir, file ? file : "");
        if (sqlite3_open_v2(file ? path : ":memory:", &p->db,
                            SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                            NULL) != SQLITE_OK)
                sql_die(p, "open");
        if (file)
                sql_exec(p, "PRAGMA journal_mode=WAL");
        snprintf(pragma, sizeof pragma, "PRAGMA synchronous=%s", sync);
        sql_exec(p, pragma);
        sql_exec(p, "CREATE TABLE kv(key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL)"
                    " WITHOUT ROWID");
        p->get = sql_prep(p, "SELECT value FROM kv WHERE key = ?1");
        {
                char sql[64 + GET_BATCH * 6];
                size_t n = (size_t)snprintf(sql, sizeof sql, "SELECT value FROM kv WHERE key IN (");
                for (int i = 1; i <= GET_BATCH; i++)
                        n += (size_t)snprintf(sql + n, sizeof sql - n, "?%d%s", i,
                                              i < GET_BATCH ? "," : ")");
                p->get_many = sql_prep(p, sql);
        }
        p->seen = calloc((cfg.keys + 7) / 8, 1);
        if (!p->seen)
                die("calloc", -ENOMEM, NULL);
        p->put = sql_prep(p, "INSERT INTO kv(key, value) VALUES(?1, ?2) ON CONFLICT(key) DO "
                             "UPDATE SET value = excluded.value");
        p->begin = sql_prep(p, "BEGIN");
        p->commit = sql_prep(p, "COMMIT");
        p->rng = 0x9E3779B97F4A7C15ull;
        sql_step_done(p, p->begin);
        for (size_t i = 0; i < cfg.keys; i++)
                peer_put(p, i, i % N_VALUES);
        sql_step_done(p, p->commit);
}

static void peer_close(peer *p)
{
        sqlite3_finalize(p->get);
        sqlite3_finalize(p->get_many);
        free(p->seen);
        sqlite3_finalize(p->put);
        sqlite3_finalize(p->begin);
        sqlite3_finalize(p->commit);
        sqlite3_close(p->db);
}

static double peer_get(void *ctx)
{
        peer *p = ctx;
        uint64_t t0 = bench_now_ns(), end = t0 + (uint64_t)(cfg.secs * 1e9), n = 0, t;

        do {
                for (int i = 0; i < 256; i++) {
                        sqlite3_bind_text(p->get, 1, key_text[bench_xorshift(&p->rng) % cfg.keys], -1,
                                          SQLITE_STATIC);
                        if (sqlite3_step(p->get) != SQLITE_ROW || !sqlite3_column_text(p->get, 0))
                                sql_die(p, "point read");
                        sqlite3_reset(p->get);
                }
                n += 256;
        } while ((t = bench_now_ns()) < end);
        return (double)n * 1e9 / (double)(t - t0);
}

/* The peer of ours_get_many: one SELECT ... WHERE key IN (GET_BATCH keys) a batch, the
 * batched point read SQL has.  A batch's rows must be its distinct keys, all found. */
static double peer_get_many(void *ctx)
{
        peer *p = ctx;
        uint64_t t0 = bench_now_ns(), end = t0 + (uint64_t)(cfg.secs * 1e9), n = 0, t;
        size_t idx[GET_BATCH];

        do {
                for (int j = 0; j < 256 / GET_BATCH; j++) {
                        int distinct = 0, rows = 0, rc;
                        for (int i = 0; i < GET_BATCH; i++) {
                                size_t k = idx[i] = bench_xorshift(&p->rng) % cfg.keys;
                                if (!(p->seen[k / 8] & (1u << (k % 8)))) {
                                        p->seen[k / 8] |= (uint8_t)(1u << (k % 8));
                                        distinct++;
                                }
                                sqlite3_bind_text(p->get_many, i + 1, key_text[k], -1,
                                                  SQLITE_STATIC);
                        }
                        while ((rc = sqlite3_step(p->get_many)) == SQLITE_ROW) {
                                if (!sqlite3_column_text(p->get_many, 0))
                                        sql_die(p, "batched point read (NULL value)");
                                rows++;
                        }
                        if (rc != SQLITE_DONE || rows != distinct)
                                sql_die(p, "batched point read (not every key found)");
                        sqlite3_reset(p->get_many);
                        for (int i = 0; i < GET_BATCH; i++)
                                p->seen[idx[i] / 8] = 0;
                }
                n += 256;
        } while ((t = bench_now_ns()) < end);
        return (double)n * 1e9 / (double)(t - t0);
}

static double peer_put_rate(void *ctx)
{
        peer *p = ctx;
        uint64_t t0 = bench_now_ns(), end = t0 + (uint64_t)(cfg.secs * 1e9), n = 0, t;

        do {
                for (int i = 0; i < 256; i++) {
                        uint64_t x = bench_xorshift(&p->rng);
                        peer_put(p, x % cfg.keys, (x >> 40) % N_VALUES);
                }
                n += 256;
        } while ((t = bench_now_ns()) < end);
        return (double)n * 1e9 / (double)(t - t0);
}

static double peer_put_latency(void *ctx)
{
        peer *p = ctx;
        uint64_t end = bench_now_ns() + (uint64_t)(cfg.secs * 1e9), a, b;
        samples s = { 0 };

        do {
                uint64_t x = bench_xorshift(&p->rng);
                a = bench_now_ns();
                peer_put(p, x % cfg.keys, (x >> 40) % N_VALUES); /* autocommit */
                b = bench_now_ns();
                samples_add(&s, b - a);
        } while (b < end || s.n < 20);
        return samples_median_us(&s);
}

/* The anchors' "100-row batches under FULL": rows per second, counted at each COMMIT. */
static double peer_batched(void *ctx)
{
        peer *p = ctx;
        uint64_t t0 = bench_now_ns(), end = t0 + (uint64_t)(cfg.secs * 1e9), n = 0, t;

        do {
                sql_step_done(p, p->begin);
                for (int i = 0; i < 100; i++) {
                        uint64_t x = bench_xorshift(&p->rng);
                        peer_put(p, x % cfg.keys, (x >> 40) % N_VALUES);
                }
                sql_step_done(p, p->commit);
                n += 100;
        } while ((t = bench_now_ns()) < end);
        return (double)n * 1e9 / (double)(t - t0);
}

/* ------------------------------------------------------------------ publish */

/*
 * The publish fURI is /sensors/lab/d0/temp.  Ten subscriptions match it at every N (a mix
 * of literal, `+` and `#`); the other N - 10 are spread over distinct rooms, devices and
 * metrics (room<k>, dev<k>, m<k> never equal lab, d0, temp), in eight shapes, so they share
 * the trie's upper levels with the matching ones without matching.
 */
static const char *const pub_topic = "/sensors/lab/d0/temp";
static const char *const matching[10] = {
        "/sensors/lab/d0/temp", "/sensors/lab/d0/+",  "/sensors/lab/+/temp",
        "/sensors/+/d0/temp",   "/sensors/+/+/temp",  "/sensors/lab/+/+",
        "/sensors/lab/d0/#",    "/sensors/lab/#",     "/sensors/#",
        "/+/lab/+/temp",
};

static void filler_pattern(char *buf, size_t n, size_t i)
{
        size_t k = i / 8;

        switch (i % 8) {
        case 0: snprintf(buf, n, "/sensors/room%zu/dev%zu/m%zu", k, k % 50, k % 7); break;
        case 1: snprintf(buf, n, "/sensors/room%zu/dev%zu/+", k, k % 50); break;
        case 2: snprintf(buf, n, "/sensors/room%zu/+/m%zu", k, k % 7); break;
        case 3: snprintf(buf, n, "/sensors/+/dev%zu/m%zu", k, k % 7); break;
        case 4: snprintf(buf, n, "/sensors/room%zu/dev%zu/#", k, k % 50); break;
        case 5: snprintf(buf, n, "/sensors/room%zu/#", k); break;
        case 6: snprintf(buf, n, "/sensors/+/+/m%zu", k); break;
        default: snprintf(buf, n, "/sensors/room%zu/+/+", k); break;
        }
}

typedef struct pub {
        size_t n_subs;
        hyb_store *st;
        hyb_slot **slots;
        hyb_furi **patterns;    /* for the linear peer */
        hyb_furi *topic;
        hyb_obj *value;
        uint64_t delivered;
        bool transient;
        double matches_ours, matches_linear;
} pub;

static void on_msg(const hyb_furi *target, const hyb_obj *payload, bool retain, void *ud)
{
        (*(uint64_t *)ud)++;
}

static void pub_setup(pub *p, size_t n_subs)
{
        hyb_store_options opts;
        char buf[128];
        hyb_error e;

        memset(p, 0, sizeof(*p));
        p->n_subs = n_subs;
        hyb_store_options_init(&opts);
        opts.durability = HYB_DURABILITY_MEMORY;
        opts.max_subscriptions = n_subs + 16;
        check("hyb_store_open", hyb_store_open(NULL, &opts, &p->st, &e), &e);
        p->slots = calloc(n_subs, sizeof(*p->slots));
        p->patterns = calloc(n_subs, sizeof(*p->patterns));
        if (!p->slots || !p->patterns)
                die("calloc", -ENOMEM, NULL);
        for (size_t i = 0; i < n_subs; i++) {
                if (i < 10)
                        snprintf(buf, sizeof buf, "%s", matching[i]);
                else
                        filler_pattern(buf, sizeof buf, i - 10);
                check("parse pattern", hyb_furi_parse(buf, (size_t)-1, NULL, &p->patterns[i], &e),
                      &e);
                check("hyb_store_subscribe", hyb_store_subscribe(p->st, p->patterns[i], 0, on_msg,
                                                                 &p->delivered, &p->slots[i], &e),
                      &e);
        }
        check("parse topic", hyb_furi_parse(pub_topic, (size_t)-1, NULL, &p->topic, &e), &e);
        check("new real", hyb_obj_new_real(21.5, &p->value), NULL);
}

static void pub_teardown(pub *p)
{
        for (size_t i = 0; i < p->n_subs; i++) {
                hyb_slot_unref(p->slots[i]);
                hyb_furi_unref(p->patterns[i]);
        }
        free(p->slots);
        free(p->patterns);
        hyb_store_unref(p->st);
        hyb_furi_unref(p->topic);
        hyb_obj_unref(p->value);
}

/* ns per write, the write's delivery to every matching subscription included. */
static double pub_ours(void *ctx)
{
        pub *p = ctx;
        unsigned flags = p->transient ? HYB_WRITE_TRANSIENT : 0;
        uint64_t t0, end, n = 0, t, before = p->delivered;
        hyb_error e;

        t0 = bench_now_ns();
        end = t0 + (uint64_t)(cfg.secs * 1e9);
        do {
                for (int i = 0; i < 64; i++) {
                        check("hyb_store_write (publish)",
                              hyb_store_write(p->st, p->topic, p->value, flags, &e), &e);
                        check("hyb_store_process", hyb_store_process(p->st), NULL);
                }
                n += 64;
        } while ((t = bench_now_ns()) < end);
        p->matches_ours = (double)(p->delivered - before) / (double)n;
        return (double)(t - t0) / (double)n;
}

/* What a store without a pattern index does (FhatOS): match the write against every
 * subscription, then call each matching one. */
static double pub_linear(void *ctx)
{
        pub *p = ctx;
        uint64_t t0, end, n = 0, t, before = p->delivered;

        t0 = bench_now_ns();
        end = t0 + (uint64_t)(cfg.secs * 1e9);
        do {
                for (size_t i = 0; i < p->n_subs; i++)
                        if (hyb_furi_match(p->topic, p->patterns[i]))
                                on_msg(p->topic, p->value, !p->transient, &p->delivered);
                n++;
        } while ((t = bench_now_ns()) < end);
        p->matches_linear = (double)(p->delivered - before) / (double)n;
        return (double)(t - t0) / (double)n;
}

/* ------------------------------------------------------------------ main */

enum {
        R_MEM_GET, R_MEM_GET_EQUAL, R_MEM_GET_MANY, R_MEM_GET_MANY_EQUAL, R_MEM_PUT, R_DISK_GET, R_PUT_NORMAL, R_PUT_FULL, R_GC_THREADS, R_GC_ASYNC100,
        R_GC_ASYNC1000,
        R_PUB_T10, R_PUB_T1K, R_PUB_T100K, R_PUB_R10, R_PUB_R1K, R_PUB_R100K,
        R_COUNT
};

static row rows[R_COUNT] = {
        [R_MEM_GET] = { "mem-get", "in-memory get, hyb_store_read", "ops/s",
                        "SQLite :memory: SELECT by key", .tk = T_MIN, .target = 6e6 },
        [R_MEM_GET_EQUAL] = { "mem-get-equal", "in-memory get, equal fURIs", "ops/s",
                              "SQLite :memory: SELECT by key" },
        [R_MEM_GET_MANY] = { "mem-get-many", "in-memory get, read_many x64", "ops/s",
                             "SQLite :memory: key IN (64 keys)", .tk = T_MIN, .target = 6e6 },
        [R_MEM_GET_MANY_EQUAL] = { "mem-get-many-equal", "in-memory get, read_many, equal", "ops/s",
                                   "SQLite :memory: key IN (64 keys)" },
        [R_MEM_PUT] = { "mem-put", "in-memory put", "ops/s", "SQLite :memory: upsert" },
        [R_DISK_GET] = { "disk-get", "get, persisted store (normal)", "ops/s",
                         "SQLite WAL file SELECT by key" },
        [R_PUT_NORMAL] = { "put-normal", "put latency, normal", "us",
                           "autocommit upsert, WAL sync=NORMAL", .tk = T_MAX_PEER, .target = 1.5 },
        [R_PUT_FULL] = { "put-full", "put latency, full", "us", "autocommit upsert, WAL sync=FULL" },
        [R_GC_THREADS] = { "gc-threads", "full + group commit, 4 threads", "ops/s",
                           "100-row txns, WAL sync=FULL", .tk = T_MIN, .target = 5e4 },
        [R_GC_ASYNC100] = { "gc-async-100", "full + group commit, async <=100", "ops/s",
                            "100-row txns, WAL sync=FULL", .tk = T_MIN, .target = 5e4 },
        [R_GC_ASYNC1000] = { "gc-async-1000", "full + group commit, async <=1000", "ops/s",
                             "100-row txns, WAL sync=FULL", .tk = T_MIN, .target = 5e4 },
        [R_PUB_T10] = { "pub-transient-10", "publish transient, N=10", "ns",
                        "linear match over N patterns" },
        [R_PUB_T1K] = { "pub-transient-1000", "publish transient, N=1000", "ns",
                        "linear match over N patterns" },
        [R_PUB_T100K] = { "pub-transient-100000", "publish transient, N=100000", "ns",
                          "linear match over N patterns", .tk = T_MAX_BASE, .target = 2,
                          .base = &rows[R_PUB_T10] },
        [R_PUB_R10] = { "pub-retained-10", "publish retained, N=10", "ns",
                        "linear match over N patterns" },
        [R_PUB_R1K] = { "pub-retained-1000", "publish retained, N=1000", "ns",
                        "linear match over N patterns" },
        [R_PUB_R100K] = { "pub-retained-100000", "publish retained, N=100000", "ns",
                          "linear match over N patterns", .tk = T_MAX_BASE, .target = 2,
                          .base = &rows[R_PUB_R10] },
};

static bool any_selected(int first, int last)
{
        for (int i = first; i <= last; i++)
                if (selected(rows[i].id))
                        return true;
        return false;
}

static void bench_memory(void)
{
        ours o;
        peer p = { 0 };

        if (!any_selected(R_MEM_GET, R_MEM_PUT))
                return;
        ours_open(&o, NULL, HYB_DURABILITY_MEMORY);
        peer_open(&p, NULL, "OFF");
        if (selected(rows[R_MEM_GET].id))
                run_pair(&rows[R_MEM_GET], ours_get, &o, peer_get, &p);
        if (selected(rows[R_MEM_GET_EQUAL].id))
                run_pair(&rows[R_MEM_GET_EQUAL], ours_get_equal, &o, peer_get, &p);
        snprintf(rows[R_MEM_GET_EQUAL].note, sizeof rows[R_MEM_GET_EQUAL].note,
                 "hyb_store_read with fURIs parsed apart from the ones written (no address hit)");
        if (selected(rows[R_MEM_GET_MANY].id))
                run_pair(&rows[R_MEM_GET_MANY], ours_get_many, &o, peer_get_many, &p);
        snprintf(rows[R_MEM_GET_MANY].note, sizeof rows[R_MEM_GET_MANY].note,
                 "hyb_store_read_many, %d random keys a call; the peer: one SELECT a batch",
                 GET_BATCH);
        if (selected(rows[R_MEM_GET_MANY_EQUAL].id))
                run_pair(&rows[R_MEM_GET_MANY_EQUAL], ours_get_many_equal, &o, peer_get_many, &p);
        snprintf(rows[R_MEM_GET_MANY_EQUAL].note, sizeof rows[R_MEM_GET_MANY_EQUAL].note,
                 "hyb_store_read_many, %d random keys a call, fURIs parsed apart (no address hit)",
                 GET_BATCH);
        if (selected(rows[R_MEM_PUT].id))
                run_pair(&rows[R_MEM_PUT], ours_put_rate, &o, peer_put_rate, &p);
        hyb_store_unref(o.st);
        peer_close(&p);
}

static void bench_normal(void)
{
        ours o;
        peer p = { 0 };

        if (!any_selected(R_DISK_GET, R_PUT_NORMAL))
                return;
        ours_open(&o, "store-normal.db", HYB_DURABILITY_NORMAL);
        peer_open(&p, "sqlite-normal.db", "NORMAL");
        if (selected(rows[R_DISK_GET].id))
                run_pair(&rows[R_DISK_GET], ours_get, &o, peer_get, &p);
        if (selected(rows[R_PUT_NORMAL].id))
                run_pair(&rows[R_PUT_NORMAL], ours_put_latency, &o, peer_put_latency, &p);
        hyb_store_unref(o.st);
        peer_close(&p);
}

static void bench_full(void)
{
        ours o;
        peer p = { 0 };
        gc_async g100 = { .o = &o, .window = 100 }, g1000 = { .o = &o, .window = 1000 };

        if (!any_selected(R_PUT_FULL, R_GC_ASYNC1000))
                return;
        ours_open(&o, "store-full.db", HYB_DURABILITY_FULL);
        peer_open(&p, "sqlite-full.db", "FULL");
        if (selected(rows[R_PUT_FULL].id))
                run_pair(&rows[R_PUT_FULL], ours_put_latency, &o, peer_put_latency, &p);
        if (selected(rows[R_GC_THREADS].id))
                run_pair(&rows[R_GC_THREADS], ours_gc_threads, &o, peer_batched, &p);
        if (selected(rows[R_GC_ASYNC100].id))
                run_pair(&rows[R_GC_ASYNC100], ours_gc_async, &g100, peer_batched, &p);
        if (selected(rows[R_GC_ASYNC1000].id))
                run_pair(&rows[R_GC_ASYNC1000], ours_gc_async, &g1000, peer_batched, &p);
        hyb_store_unref(o.st);
        peer_close(&p);
}

static void bench_publish(void)
{
        static const size_t ns[3] = { 10, 1000, 100000 };

        for (int i = 0; i < 3; i++) {
                row *rt = &rows[R_PUB_T10 + i], *rr = &rows[R_PUB_R10 + i];
                uint64_t t0;
                pub p;

                if (!selected(rt->id) && !selected(rr->id))
                        continue;
                t0 = bench_now_ns();
                pub_setup(&p, ns[i]);
                if (cfg.verbose)
                        fprintf(stderr, "  (%zu subscriptions installed in %.0f ms)\n", ns[i],
                                (double)(bench_now_ns() - t0) / 1e6);
                if (selected(rt->id)) {
                        p.transient = true;
                        run_pair(rt, pub_ours, &p, pub_linear, &p);
                        snprintf(rt->note, sizeof rt->note,
                                 "%.2f deliveries per publish (linear peer: %.2f)", p.matches_ours,
                                 p.matches_linear);
                        if (p.matches_ours != 10 || p.matches_linear != 10)
                                fprintf(stderr, "WARNING: %s: %.2f deliveries per publish, "
                                        "expected 10\n", rt->name, p.matches_ours);
                }
                if (selected(rr->id)) {
                        p.transient = false;
                        run_pair(rr, pub_ours, &p, pub_linear, &p);
                        snprintf(rr->note, sizeof rr->note,
                                 "%.2f deliveries per publish (linear peer: %.2f)", p.matches_ours,
                                 p.matches_linear);
                        if (p.matches_ours != 10 || p.matches_linear != 10)
                                fprintf(stderr, "WARNING: %s: %.2f deliveries per publish, "
                                        "expected 10\n", rr->name, p.matches_ours);
                }
                pub_teardown(&p);
        }
}

static void rm_dir(void)
{
        static const char *const files[] = { "store-normal.db", "store-full.db",
                                             "sqlite-normal.db", "sqlite-full.db" };
        char path[700];

        for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
                for (int j = 0; j < 3; j++) {
                        snprintf(path, sizeof path, "%s/%s%s", cfg.dir, files[i],
                                 j == 0 ? "" : j == 1 ? "-wal" : "-shm");
                        unlink(path);
                }
        rmdir(cfg.dir);
}

/* The machines are shared: say how busy this one was, so a disturbed run is recognisable. */
static void print_load(const char *when)
{
        double l1 = -1, l5 = -1;
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        FILE *f = fopen("/proc/loadavg", "re");

        if (f) {
                if (fscanf(f, "%lf %lf", &l1, &l5) != 2)
                        l1 = l5 = -1;
                fclose(f);
        }
        printf("bench-store: load average %s: %.2f (1 min), %.2f (5 min)%s\n", when, l1, l5,
               l1 > (double)cpus ? "  WARNING: more runnable tasks than cpus, figures are noisy"
                                 : "");
}

static void usage(FILE *f)
{
        fprintf(f, "usage: bench-store [--quick] [--runs N] [--secs S] [--keys K] [--dir DIR]\n"
                   "                   [--rows IDS] [--verbose] [--no-peer]\n"
                   "  --quick     smoke run: 3 runs of 0.15 s, 20 000 keys (~15 s)\n"
                   "  --runs N    runs per figure, the median is printed (default 5)\n"
                   "  --secs S    seconds of work per run and side (default 0.8)\n"
                   "  --keys K    stored keys (default 100000)\n"
                   "  --dir DIR   where the databases go (default $TMPDIR or /tmp)\n"
                   "  --rows IDS  only these rows (comma-separated ids; a word ending in '-'\n"
                   "              takes a group: mem-get,put-normal,gc-,pub-transient-100000)\n"
                   "  --verbose   per-run figures as RESULT lines, setup times\n"
                   "  --no-peer   only our side (for profiling: perf, callgrind, strace)\n");
}

int main(int argc, char **argv)
{
        static const struct option longopts[] = {
                { "quick", no_argument, NULL, 'q' },  { "runs", required_argument, NULL, 'r' },
                { "secs", required_argument, NULL, 's' }, { "keys", required_argument, NULL, 'k' },
                { "dir", required_argument, NULL, 'd' },  { "rows", required_argument, NULL, 'R' },
                { "verbose", no_argument, NULL, 'v' },    { "help", no_argument, NULL, 'h' },
                { "no-peer", no_argument, NULL, 'P' },
                {},
        };
        const char *base = getenv("TMPDIR");
        const char *dir = NULL;
        char cpu[128] = "?", line[256];
        FILE *f;
        int c;

        while ((c = getopt_long(argc, argv, "qr:s:k:d:R:vh", longopts, NULL)) >= 0)
                switch (c) {
                case 'q':
                        cfg.quick = true;
                        cfg.runs = 3;
                        cfg.secs = 0.15;
                        cfg.keys = 20000;
                        break;
                case 'r':
                        cfg.runs = atoi(optarg);
                        break;
                case 's':
                        cfg.secs = atof(optarg);
                        break;
                case 'k':
                        cfg.keys = (size_t)atol(optarg);
                        break;
                case 'd':
                        dir = optarg;
                        break;
                case 'R':
                        cfg.rows = optarg;
                        break;
                case 'v':
                        cfg.verbose = true;
                        break;
                case 'P':
                        cfg.no_peer = true;
                        break;
                case 'h':
                        usage(stdout);
                        return 0;
                default:
                        usage(stderr);
                        return 2;
                }
        if (cfg.runs < 1 || cfg.runs > MAX_RUNS || cfg.secs <= 0 || cfg.keys < 1000) {
                usage(stderr);
                return 2;
        }
        snprintf(cfg.dir, sizeof cfg.dir, "%s/bench-store-XXXXXX",
                 dir ? dir : base && *base ? base : "/tmp");
        if (!mkdtemp(cfg.dir)) {
                fprintf(stderr, "bench-store: mkdtemp %s: %s\n", cfg.dir, strerror(errno));
                return 1;
        }
        if ((f = fopen("/proc/cpuinfo", "re"))) {
                while (fgets(line, sizeof line, f))
                        if (strncmp(line, "model name", 10) == 0 && strchr(line, ':')) {
                                snprintf(cpu, sizeof cpu, "%s", strchr(line, ':') + 2);
                                cpu[strcspn(cpu, "\n")] = 0;
                                break;
                        }
                fclose(f);
        }
        printf("bench-store: libhybrid %s, SQLite %s, %ld cpus (%s)\n", hyb_version(),
               sqlite3_libversion(), sysconf(_SC_NPROCESSORS_ONLN), cpu);
        printf("bench-store: %d runs x %.2f s per side, %zu keys, databases in %s\n", cfg.runs,
               cfg.secs, cfg.keys, cfg.dir);
        print_load("at start");
        fflush(stdout);

        make_data();
        bench_memory();
        bench_normal();
        bench_full();
        bench_publish();
        print_table(rows, R_COUNT);
        print_load("at end");
        free_data();
        rm_dir();
        return 0;
}
