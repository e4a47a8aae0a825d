/* SPDX-License-Identifier: MIT */
/*
 * rt - the C end of the cross-language value round trip (bindings/cross/README.md).
 *
 *   rt gen   SOCKET PREFIX SEED N      writes N values to the daemon's store
 *   rt check SOCKET SEED N [-x PREFIX | -j PREFIX | -e ENDPOINT | -E ENDPOINT]...
 *   rt serve SOCKET APP                serves `echo` (policy {values: array}) until killed
 *
 * The values are a seeded sequence: the edge values first (int64 extremes, +-(2^53+1), -0.0,
 * the smallest and largest subnormals, DBL_MIN, DBL_MAX, 0.1, 1/3, ...), then random int64s of
 * every magnitude and random finite double bit patterns (subnormals forced one time in eight).
 * They are stored CHUNK to a key, as a lst, at PREFIX/k<index>.
 *
 * check regenerates the sequence and compares, kind and bits (memcmp of the doubles):
 *   -x PREFIX    the copy stored at PREFIX must be exact;
 *   -j PREFIX    the copy at PREFIX went through JavaScript: exact, except that a real holding
 *                an integral value in the safe-integer range (|v| <= 2^53-1, not -0.0) must come
 *                back as the int of that value (the node binding's documented rule: JavaScript
 *                has one number type);
 *   -e ENDPOINT  the values sent as {"values": [...]} to ENDPOINT's echo must come back exact;
 *   -E ENDPOINT  the same through an echo served in JavaScript (the rule of -j);
 * and always the JSON text leg: each value alone and each chunk through hyb_obj_to_json and
 * hyb_obj_from_json, exact.  Every mismatch is printed (the first 20) and the exit status is 1.
 */
#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hybrid/bus-store.h>
#include <hybrid/bus.h>
#include <hybrid/common.h>
#include <hybrid/endpoint.h>
#include <hybrid/obj.h>

#define CHUNK 100
#define MAX_SHOWN 20
#define SAFE_MAX 9007199254740991.0 /* 2^53 - 1 */

typedef struct value {
        bool is_real;
        int64_t i;
        double d;
} value;

static uint64_t rng_state;

/* splitmix64: every seed (0 included) gives a full-period, well-mixed sequence. */
static uint64_t rng_next(void)
{
        uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        return z ^ (z >> 31);
}

static double bits_to_double(uint64_t u)
{
        double d;
        memcpy(&d, &u, sizeof d);
        return d;
}

static value vint(int64_t i)
{
        return (value){ .is_real = false, .i = i };
}

static value vreal(double d)
{
        return (value){ .is_real = true, .d = d };
}

/* The edge values, in this order, start every sequence. */
static size_t edge_values(value *v)
{
        size_t n = 0;
        const int64_t p53 = INT64_C(1) << 53;

        v[n++] = vint(INT64_MAX);
        v[n++] = vint(INT64_MIN);
        v[n++] = vint(p53 + 1);
        v[n++] = vint(-(p53 + 1));
        v[n++] = vint(p53);
        v[n++] = vint(p53 - 1);
        v[n++] = vint(-(p53 - 1));
        v[n++] = vint(0);
        v[n++] = vint(1);
        v[n++] = vint(-1);
        v[n++] = vint(255); /* ints -16..255 are cached objs: both sides of the bounds */
        v[n++] = vint(256);
        v[n++] = vint(-16);
        v[n++] = vint(-17);
        v[n++] = vint(INT32_MAX);
        v[n++] = vint((int64_t)INT32_MAX + 1);
        v[n++] = vreal(-0.0);
        v[n++] = vreal(5e-324);                  /* the smallest subnormal */
        v[n++] = vreal(-5e-324);
        v[n++] = vreal(2.2250738585072009e-308); /* the largest subnormal */
        v[n++] = vreal(DBL_MIN);
        v[n++] = vreal(DBL_MAX);
        v[n++] = vreal(-DBL_MAX);
        v[n++] = vreal(0.1);
        v[n++] = vreal(1.0 / 3.0);
        v[n++] = vreal(0.30000000000000004);
        v[n++] = vreal(1e16);
        v[n++] = vreal(1e-4);
        v[n++] = vreal(18014398509481984.0); /* 2^54: integral, beyond the safe range: a real in JS */
        v[n++] = vreal(1e300);
        /* integral reals in JavaScript's safe range: ints after a JS leg (the node rule) */
        v[n++] = vreal(0.0);
        v[n++] = vreal(1.0);
        v[n++] = vreal(-3.0);
        v[n++] = vreal(SAFE_MAX);
        v[n++] = vreal(-SAFE_MAX);
        v[n++] = vreal(9007199254740992.0); /* 2^53: integral but not safe, stays a real */
        return n;
}
#define N_EDGE 36

static value random_value(void)
{
        uint64_t r = rng_next();

        if (r & 1) {
                /* an int64 of a random bit length 0..64, either sign */
                unsigned shift = (unsigned)((r >> 1) % 65);
                uint64_t u = shift == 64 ? 0 : rng_next() >> shift;
                int64_t i = (int64_t)u;
                if (((r >> 8) & 1) && i != INT64_MIN)
                        i = -i;
                return vint(i);
        }
        for (;;) {
                uint64_t u = rng_next();
                unsigned kind = (unsigned)((r >> 1) & 7);
                if (kind == 0)
                        u &= ~(UINT64_C(0x7ff) << 52); /* a subnormal (or a zero) */
                else if (kind == 1)                    /* an everyday magnitude, 2^-64..2^64 */
                        u = (u & ~(UINT64_C(0x7ff) << 52)) |
                            ((uint64_t)(1023 - 64 + (rng_next() % 129)) << 52);
                if (((u >> 52) & 0x7ff) == 0x7ff)
                        continue; /* inf and nan have no JSON form: not values of the mapping */
                return vreal(bits_to_double(u));
        }
}

static value *make_values(uint64_t seed, size_t n)
{
        value edge[N_EDGE + 4];
        size_t ne = edge_values(edge);
        value *v = calloc(n ? n : 1, sizeof *v);

        if (!v) {
                perror("calloc");
                exit(2);
        }
        rng_state = seed;
        for (size_t i = 0; i < n; i++)
                v[i] = i < ne ? edge[i] : random_value();
        return v;
}

/* The node binding's rule: a real that is an integral number in the safe range reads as an int. */
static bool js_int(const value *v)
{
        return v->is_real && v->d == floor(v->d) &&
               fabs(v->d) <= SAFE_MAX && !(v->d == 0 && signbit(v->d));
}

static value expected(const value *v, bool js)
{
        if (js && js_int(v))
                return vint((int64_t)v->d);
        return *v;
}

static int obj_of(const value *v, hyb_obj **ret)
{
        return v->is_real ? hyb_obj_new_real(v->d, ret) : hyb_obj_new_int(v->i, ret);
}

static int chunk_obj(const value *v, size_t n, hyb_obj **ret)
{
        hyb_obj *items[CHUNK];
        int r = 0;

        for (size_t i = 0; i < n; i++)
                if ((r = obj_of(&v[i], &items[i])) < 0) {
                        n = i;
                        break;
                }
        if (r == 0)
                r = hyb_obj_new_lst(items, n, ret);
        for (size_t i = 0; i < n; i++)
                hyb_obj_unref(items[i]);
        return r;
}

static void describe(const value *v, char *buf, size_t size)
{
        uint64_t u;
        if (!v->is_real) {
                snprintf(buf, size, "int %" PRId64, v->i);
                return;
        }
        memcpy(&u, &v->d, sizeof u);
        snprintf(buf, size, "real %.17g (0x%016" PRIx64 ")", v->d, u);
}

static size_t n_bad;

static void mismatch(const char *leg, size_t index, const value *want, const char *got)
{
        char w[96];
        n_bad++;
        if (n_bad > MAX_SHOWN)
                return;
        describe(want, w, sizeof w);
        printf("MISMATCH %s: value %zu: wanted %s, got %s\n", leg, index, w, got);
}

/* Compares one obj with the value it should hold, kind and bits. */
static void compare_one(const char *leg, size_t index, const value *orig, const hyb_obj *o, bool js)
{
        value want = expected(orig, js);
        char got[128];

        if (!o) {
                mismatch(leg, index, &want, "nothing");
                return;
        }
        switch (hyb_obj_get_kind(o)) {
        case HYB_OBJ_INT:
                if (!want.is_real && hyb_obj_get_int(o) == want.i)
                        return;
                snprintf(got, sizeof got, "int %" PRId64, hyb_obj_get_int(o));
                break;
        case HYB_OBJ_REAL: {
                double d = hyb_obj_get_real(o);
                if (want.is_real && memcmp(&d, &want.d, sizeof d) == 0)
                        return;
                value g = vreal(d);
                describe(&g, got, sizeof got);
                break;
        }
        default:
                snprintf(got, sizeof got, "a %s", hyb_obj_kind_name(hyb_obj_get_kind(o)));
                break;
        }
        mismatch(leg, index, &want, got);
}

/* Compares a lst with values v[0..n). */
static void compare_chunk(const char *leg, size_t first, const value *v, size_t n, const hyb_obj *lst,
                          bool js)
{
        if (!lst || hyb_obj_get_kind(lst) != HYB_OBJ_LST || hyb_obj_get_len(lst) != n) {
                char got[96];
                snprintf(got, sizeof got, "%s of %zu items instead of a lst of %zu",
                         lst ? hyb_obj_kind_name(hyb_obj_get_kind(lst)) : "nothing",
                         lst ? hyb_obj_get_len(lst) : 0, n);
                mismatch(leg, first, &v[0], got);
                return;
        }
        for (size_t i = 0; i < n; i++)
                compare_one(leg, first + i, &v[i], hyb_obj_get_at(lst, i), js);
}

static hyb_bus *connect_or_die(const char *sock, const char *app)
{
        hyb_bus *bus = NULL;
        hyb_error err = { 0 };
        char runner[32];

        snprintf(runner, sizeof runner, "p%ld", (long)getpid());
        if (hyb_bus_connect(sock, app, runner, &bus, &err) < 0) {
                fprintf(stderr, "rt: connect %s: %s\n", sock, err.message);
                exit(2);
        }
        return bus;
}

static void key_of(char *buf, size_t size, const char *prefix, size_t chunk)
{
        snprintf(buf, size, "%s/k%06zu", prefix, chunk);
}

static int cmd_gen(const char *sock, const char *prefix, uint64_t seed, size_t n)
{
        value *v = make_values(seed, n);
        hyb_bus *bus = connect_or_die(sock, "org.example.c.rt");
        hyb_error err = { 0 };
        char key[256];

        for (size_t c = 0; c * CHUNK < n; c++) {
                size_t k = n - c * CHUNK < CHUNK ? n - c * CHUNK : CHUNK;
                hyb_obj *lst = NULL;
                int r = chunk_obj(v + c * CHUNK, k, &lst);
                if (r < 0) {
                        fprintf(stderr, "rt: building chunk %zu: %s\n", c, hyb_strerror(r));
                        return 2;
                }
                key_of(key, sizeof key, prefix, c);
                r = hyb_bus_store_write(bus, key, lst, 0, &err);
                hyb_obj_unref(lst);
                if (r < 0) {
                        fprintf(stderr, "rt: store write %s: %s\n", key, err.message);
                        return 2;
                }
        }
        hyb_bus_unref(bus);
        free(v);
        return 0;
}

/* The JSON text leg: every value alone, then the chunk as one document. */
static void check_json(const value *v, size_t first, size_t n)
{
        hyb_error err = { 0 };
        hyb_obj *lst = NULL, *back = NULL;
        char *text = NULL;

        for (size_t i = 0; i < n; i++) {
                hyb_obj *o = NULL, *b = NULL;
                char *t = NULL;
                if (obj_of(&v[i], &o) < 0 || hyb_obj_to_json(o, &t, &err) < 0 ||
                    hyb_obj_from_json(t, strlen(t), &b, &err) < 0)
                        mismatch("json (one value)", first + i, &v[i], err.message);
                else
                        compare_one("json (one value)", first + i, &v[i], b, false);
                hyb_obj_unref(o);
                hyb_obj_unref(b);
                hyb_free(t);
        }
        if (chunk_obj(v, n, &lst) < 0 || hyb_obj_to_json(lst, &text, &err) < 0 ||
            hyb_obj_from_json(text, strlen(text), &back, &err) < 0)
                mismatch("json (chunk)", first, &v[0], err.message);
        else
                compare_chunk("json (chunk)", first, v, n, back, false);
        hyb_obj_unref(lst);
        hyb_obj_unref(back);
        hyb_free(text);
}

static void check_echo(hyb_bus *bus, const char *endpoint, bool js, const value *v, size_t first,
                       size_t n)
{
        hyb_error err = { 0 };
        hyb_obj *lst = NULL, *back = NULL;
        hyb_bus_reply *reply = NULL;
        char *text = NULL, *body = NULL, leg[300];

        snprintf(leg, sizeof leg, "echo of %s", endpoint);
        if (chunk_obj(v, n, &lst) < 0 || hyb_obj_to_json(lst, &text, &err) < 0) {
                mismatch(leg, first, &v[0], err.message);
                goto out;
        }
        body = malloc(strlen(text) + 16);
        if (!body) {
                perror("malloc");
                exit(2);
        }
        sprintf(body, "{\"values\":%s}", text);
        if (hyb_bus_call(bus, endpoint, "echo", body, strlen(body), 0, 30000, &reply, &err) < 0) {
                mismatch(leg, first, &v[0], err.message);
                goto out;
        }
        size_t len = 0;
        const char *rb = hyb_bus_reply_get_body(reply, &len);
        if (hyb_obj_from_json(rb, len, &back, &err) < 0) {
                mismatch(leg, first, &v[0], err.message);
                goto out;
        }
        hyb_obj *key = NULL;
        if (hyb_obj_new_uri_str("values", &key, &err) < 0) {
                mismatch(leg, first, &v[0], err.message);
                goto out;
        }
        compare_chunk(leg, first, v, n, hyb_obj_get_field(back, key), js);
        hyb_obj_unref(key);
out:
        hyb_bus_reply_unref(reply);
        hyb_obj_unref(lst);
        hyb_obj_unref(back);
        hyb_free(text);
        free(body);
}

static int cmd_check(const char *sock, uint64_t seed, size_t n, int argc, char **argv)
{
        value *v = make_values(seed, n);
        hyb_bus *bus = connect_or_die(sock, "org.example.c.rtcheck");
        hyb_error err = { 0 };
        char key[256], leg[300];
        size_t legs = 1;

        for (size_t c = 0; c * CHUNK < n; c++) {
                size_t k = n - c * CHUNK < CHUNK ? n - c * CHUNK : CHUNK;
                check_json(v + c * CHUNK, c * CHUNK, k);
        }
        for (int a = 0; a + 1 < argc; a += 2) {
                const char *opt = argv[a], *arg = argv[a + 1];
                bool js = strcmp(opt, "-j") == 0 || strcmp(opt, "-E") == 0;
                legs++;
                for (size_t c = 0; c * CHUNK < n; c++) {
                        size_t k = n - c * CHUNK < CHUNK ? n - c * CHUNK : CHUNK;
                        if (strcmp(opt, "-x") == 0 || strcmp(opt, "-j") == 0) {
                                hyb_obj *got = NULL;
                                key_of(key, sizeof key, arg, c);
                                snprintf(leg, sizeof leg, "store copy %s%s", arg,
                                         js ? " (JS rule)" : "");
                                if (hyb_bus_store_read(bus, key, &got, &err) < 0)
                                        mismatch(leg, c * CHUNK, &v[c * CHUNK], err.message);
                                else
                                        compare_chunk(leg, c * CHUNK, v + c * CHUNK, k, got, js);
                                hyb_obj_unref(got);
                        } else if (strcmp(opt, "-e") == 0 || strcmp(opt, "-E") == 0) {
                                check_echo(bus, arg, js, v + c * CHUNK, c * CHUNK, k);
                        } else {
                                fprintf(stderr, "rt: unknown option %s\n", opt);
                                return 2;
                        }
                }
        }
        size_t n_js = 0;
        for (size_t i = 0; i < n; i++)
                n_js += js_int(&v[i]);
        if (n_bad > MAX_SHOWN)
                printf("... %zu mismatches in all\n", n_bad);
        printf("%s: %zu values (%zu integral reals in the JS safe range) x %zu legs, %zu mismatches\n",
               n_bad ? "FAIL" : "ok", n, n_js, legs, n_bad);
        hyb_bus_unref(bus);
        free(v);
        return n_bad ? 1 : 0;
}

/* echo: the params' "values" re-encoded through the C mapping (from_json, to_json). */
static int on_echo(hyb_bus_request *req, void *userdata)
{
        (void)userdata;
        size_t len = 0;
        const char *body = hyb_bus_request_get_body(req, &len);
        hyb_obj *o = NULL;
        hyb_error err = { 0 };
        char *text = NULL;
        int r;

        if (hyb_obj_from_json(body, len, &o, &err) < 0 || hyb_obj_to_json(o, &text, &err) < 0)
                r = hyb_bus_request_reply_error(req, 400, err.message);
        else
                r = hyb_bus_request_reply(req, 200, text, strlen(text), 0);
        hyb_obj_unref(o);
        hyb_free(text);
        return r < 0 ? r : 0;
}

static volatile sig_atomic_t stopping;
static void on_term(int sig)
{
        (void)sig;
        stopping = 1;
}

static int cmd_serve(const char *sock, const char *app)
{
        static const hyb_arg_policy args[] = { { "values", HYB_JSON_ARRAY, 1 } };
        hyb_bus *bus = connect_or_die(sock, app);
        hyb_error err = { 0 };
        int r;

        if (hyb_endpoint_register_method(bus, "echo", args, 1, NULL, NULL, 0, on_echo, NULL, NULL,
                                         &err) < 0) {
                fprintf(stderr, "rt: register echo: %s\n", err.message);
                return 2;
        }
        signal(SIGTERM, on_term);
        signal(SIGINT, on_term);
        printf("%s\n", hyb_bus_get_endpoint_name(bus));
        fflush(stdout);
        fprintf(stderr, "ready\n");
        while (!stopping) {
                while ((r = hyb_bus_process(bus)) > 0)
                        ;
                if (r == 0)
                        r = hyb_bus_wait(bus, 500000);
                if (r < 0 && r != -EINTR) {
                        fprintf(stderr, "rt: serve: %s\n", hyb_strerror(r));
                        return 2;
                }
        }
        hyb_bus_unref(bus);
        return 0;
}

static int usage(void)
{
        fprintf(stderr, "usage: rt gen SOCKET PREFIX SEED N\n"
                        "       rt check SOCKET SEED N [-x PREFIX|-j PREFIX|-e ENDPOINT|-E ENDPOINT]...\n"
                        "       rt serve SOCKET APP\n");
        return 2;
}

int main(int argc, char **argv)
{
        if (argc == 6 && strcmp(argv[1], "gen") == 0)
                return cmd_gen(argv[2], argv[3], strtoull(argv[4], NULL, 0),
                               (size_t)strtoull(argv[5], NULL, 0));
        if (argc >= 5 && strcmp(argv[1], "check") == 0 && (argc - 5) % 2 == 0)
                return cmd_check(argv[2], strtoull(argv[3], NULL, 0),
                                 (size_t)strtoull(argv[4], NULL, 0), argc - 5, argv + 5);
        if (argc == 4 && strcmp(argv[1], "serve") == 0)
                return cmd_serve(argv[2], argv[3]);
        return usage();
}
