/* SPDX-License-Identifier: MIT */
/*
 * bus-probe - the integration tests' C client, public API only (hybrid/bus.h).
 *
 *   bus-probe echo-server SOCK RUNNER          @localhost/org.example.echo/RUNNER: echo = its params
 *   bus-probe load SOCK ENDPOINT METHOD CLIENTS CALLS   CLIENTS threads x CALLS calls, all checked
 *   bus-probe nested-b SOCK                    B: relay calls A's pong from inside its handler
 *   bus-probe nested-a SOCK                    A: offers pong, calls B's relay (A -> B -> A)
 *   bus-probe timeouts SOCK ENDPOINT METHOD N MS   N calls on ONE connection, each must be 504
 *   bus-probe flood SOCK BUBBLE N SIZE         fires N events of SIZE bytes with counts, paced
 *   bus-probe count SOCK ENDPOINT BUBBLE N     waits for N events, checks their sequence
 *   bus-probe edge-server SOCK RUNNER          @localhost/org.example.edge/RUNNER: whoami answers
 *                                              {"transport","principal","params"} of the caller
 *                                              (hyb_bus_request_get_caller_principal), hold never
 *                                              answers (until release answers every held call
 *                                              200 {}; held tells how many are held), bubble
 *                                              tick fires {"n":i} every 100 ms
 *   bus-probe replay-fair SOCK PATTERN N MANY  one connection replays PATTERN (N keys) through
 *                                              MANY subscriptions, reading as fast as it can; a
 *                                              second one replays it once: exit 0 when the one
 *                                              replay ends before the first has half of its
 *                                              messages
 * SOCK "-" connects to the library's default ($HYBRID_BUS, then the default socket).
 * Long-running modes print "ready" on stdout once registered; SIGTERM ends them.
 * Exit 0 when everything matched, 1 on a mismatch, 3 when the bus cannot be reached.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hybrid/bus-store.h>
#include <hybrid/bus.h>

static volatile sig_atomic_t stop;

static void on_term(int sig)
{
        stop = 1;
}

static hyb_bus *connect_or_die(const char *sock, const char *app, const char *runner)
{
        hyb_bus *bus = NULL;
        hyb_error e;
        int r;

        hyb_error_clear(&e);
        /* "-": NULL, the library's default ($HYBRID_BUS, then the default socket) */
        r = hyb_bus_connect(strcmp(sock, "-") == 0 ? NULL : sock, app, runner, &bus, &e);
        if (r < 0) {
                fprintf(stderr, "bus-probe: connect %s/%s: %s %s\n", app, runner, hyb_err_name(r),
                        e.message);
                exit(3);
        }
        return bus;
}

/* Runs the connection until SIGTERM (hyb_bus_wait returns -EINTR). */
static int serve_forever(hyb_bus *bus)
{
        struct sigaction sa = { .sa_handler = on_term };

        sigaction(SIGTERM, &sa, NULL); /* no SA_RESTART: the wait returns -EINTR */
        sigaction(SIGINT, &sa, NULL);
        printf("ready\n");
        fflush(stdout);
        while (!stop) {
                int r;

                while ((r = hyb_bus_process(bus)) > 0)
                        ;
                if (r < 0)
                        return 3;
                r = hyb_bus_wait(bus, 1000000);
                if (r < 0 && r != -EINTR)
                        return 3;
        }
        return 0;
}

static int on_echo(hyb_bus_request *req, void *userdata)
{
        size_t len;
        const void *body = hyb_bus_request_get_body(req, &len);

        return hyb_bus_request_reply(req, 200, body, len,
                                     hyb_bus_request_is_binary(req) ? HYB_BODY_BINARY : 0);
}

static int echo_server(char **a)
{
        hyb_bus *bus = connect_or_die(a[0], "org.example.echo", a[1]);
        hyb_error e;
        int r = hyb_bus_register_procedure(bus, "echo", NULL, NULL, on_echo, NULL, NULL, &e);

        if (r < 0) {
                fprintf(stderr, "bus-probe: register echo: %s\n", e.message);
                return 1;
        }
        r = serve_forever(bus);
        hyb_bus_unref(bus);
        return r;
}

static int on_whoami(hyb_bus_request *req, void *userdata)
{
        const char *transport = NULL, *principal = NULL;
        size_t len;
        const char *body = hyb_bus_request_get_body(req, &len);
        char out[1024];
        int n;

        if (hyb_bus_request_get_caller_principal(req, &transport, &principal) < 0)
                return -EINVAL;
        /* principal: a token's sub (no quotes or backslashes in the tests' subs) or null */
        n = snprintf(out, sizeof out, "{\"transport\":\"%s\",\"principal\":%s%s%s,\"params\":%.*s}", transport,
                     principal ? "\"" : "", principal ? principal : "null", principal ? "\"" : "",
                     len ? (int)len : 4, len ? body : "null");
        if (n < 0 || (size_t)n >= sizeof out)
                return -E2BIG;
        return hyb_bus_request_reply(req, 200, out, (size_t)n, 0);
}

static hyb_bus_request *held[64];
static unsigned n_held;

static int on_hold(hyb_bus_request *req, void *userdata)
{
        /* keep it unanswered: the broker's deadline answers the caller (504) */
        if (n_held < sizeof held / sizeof held[0])
                held[n_held++] = hyb_bus_request_ref(req);
        return 0;
}

static int on_held(hyb_bus_request *req, void *userdata)
{
        char out[32];
        int n = snprintf(out, sizeof out, "%u", n_held);

        return hyb_bus_request_reply(req, 200, out, (size_t)n, 0);
}

static int on_release(hyb_bus_request *req, void *userdata)
{
        char out[32];
        int n = snprintf(out, sizeof out, "%u", n_held);

        for (unsigned i = 0; i < n_held; i++) {
                hyb_bus_request_reply(held[i], 200, "{}", 2, 0);
                hyb_bus_request_unref(held[i]);
        }
        n_held = 0;
        return hyb_bus_request_reply(req, 200, out, (size_t)n, 0);
}

static int edge_server(char **a)
{
        hyb_bus *bus = connect_or_die(a[0], "org.example.edge", a[1]);
        struct sigaction sa = { .sa_handler = on_term };
        hyb_error e;
        int r = hyb_bus_register_procedure(bus, "whoami", NULL, NULL, on_whoami, NULL, NULL, &e);

        if (r >= 0)
                r = hyb_bus_register_procedure(bus, "hold", NULL, NULL, on_hold, NULL, NULL, &e);
        if (r >= 0)
                r = hyb_bus_register_procedure(bus, "held", NULL, NULL, on_held, NULL, NULL, &e);
        if (r >= 0)
                r = hyb_bus_register_procedure(bus, "release", NULL, NULL, on_release, NULL, NULL, &e);
        if (r >= 0)
                r = hyb_bus_register_event(bus, "tick", NULL, NULL, NULL, &e);
        if (r < 0) {
                fprintf(stderr, "bus-probe: register: %s\n", e.message);
                return 1;
        }
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGINT, &sa, NULL);
        printf("ready\n");
        fflush(stdout);
        int rc = 0;
        for (unsigned i = 0; !stop && !rc; i++) {
                uint64_t until = hyb_now_usec() + 100000;
                char body[32];
                int n = snprintf(body, sizeof body, "{\"n\":%u}", i);

                hyb_bus_fire(bus, "tick", body, (size_t)n, 0, NULL, NULL);
                while (!stop && !rc && hyb_now_usec() < until) {
                        while ((r = hyb_bus_process(bus)) > 0)
                                ;
                        if (r < 0) {
                                rc = 3; /* the daemon went away */
                                break;
                        }
                        r = hyb_bus_wait(bus, until - hyb_now_usec() < until ? until - hyb_now_usec() : 0);
                        if (r < 0 && r != -EINTR)
                                rc = 3;
                }
        }
        for (unsigned i = 0; i < n_held; i++)
                hyb_bus_request_unref(held[i]);
        hyb_bus_unref(bus);
        return rc;
}

typedef struct load_job {
        const char *sock, *endpoint, *method;
        int id, calls;
        int ok, lost, wrong;
        char first_error[320];
} load_job;

static void *load_thread(void *p)
{
        load_job *j = p;
        char runner[32], body[128];
        hyb_bus *bus;
        hyb_error e;

        snprintf(runner, sizeof(runner), "load%d", j->id);
        hyb_error_clear(&e);
        if (hyb_bus_connect(j->sock, "org.example.load", runner, &bus, &e) < 0) {
                j->lost = j->calls;
                snprintf(j->first_error, sizeof(j->first_error), "connect: %s", e.message);
                return NULL;
        }
        for (int i = 0; i < j->calls; i++) {
                hyb_bus_reply *reply = NULL;
                const void *out;
                size_t len;
                int n = snprintf(body, sizeof(body), "{\"client\":%d,\"seq\":%d}", j->id, i);
                int r = hyb_bus_call(bus, j->endpoint, j->method, body, (size_t)n, 0, 10000,
                                     &reply, &e);

                if (r < 0) {
                        if (!j->first_error[0])
                                snprintf(j->first_error, sizeof(j->first_error), "call %d: %s %s",
                                         i, hyb_err_name(r), e.message);
                        j->lost++;
                        continue;
                }
                out = hyb_bus_reply_get_body(reply, &len);
                if (len == (size_t)n && memcmp(out, body, len) == 0)
                        j->ok++;
                else
                        j->wrong++;
                hyb_bus_reply_unref(reply);
        }
        hyb_bus_unref(bus);
        return NULL;
}

static int load(char **a)
{
        int clients = atoi(a[3]), calls = atoi(a[4]), ok = 0, lost = 0, wrong = 0;
        load_job *jobs = calloc((size_t)clients, sizeof(*jobs));
        pthread_t *th = calloc((size_t)clients, sizeof(*th));

        if (!jobs || !th)
                return 1;
        for (int i = 0; i < clients; i++) {
                jobs[i] = (load_job){ .sock = a[0], .endpoint = a[1], .method = a[2], .id = i,
                                      .calls = calls };
                pthread_create(&th[i], NULL, load_thread, &jobs[i]);
        }
        for (int i = 0; i < clients; i++) {
                pthread_join(th[i], NULL);
                ok += jobs[i].ok;
                lost += jobs[i].lost;
                wrong += jobs[i].wrong;
                if (jobs[i].first_error[0])
                        fprintf(stderr, "client %d: %s\n", i, jobs[i].first_error);
        }
        printf("ok %d lost %d wrong %d\n", ok, lost, wrong);
        free(jobs);
        free(th);
        return ok == clients * calls ? 0 : 1;
}

#define A_NAME "@localhost/org.example.a/main"
#define B_NAME "@localhost/org.example.b/main"

static int on_relay(hyb_bus_request *req, void *userdata)
{
        hyb_bus *bus = hyb_bus_request_get_bus(req);
        hyb_bus_reply *inner = NULL;
        hyb_error e;
        char out[512];
        const void *body;
        size_t len;
        int r, n;

        /* B's handler calls back into A while A is still waiting for B. */
        r = hyb_bus_call(bus, A_NAME, "pong", "{}", 2, 0, 5000, &inner, &e);
        if (r < 0)
                return hyb_bus_request_reply_error(req, hyb_err_to_status(r), e.message);
        body = hyb_bus_reply_get_body(inner, &len);
        n = snprintf(out, sizeof(out), "{\"via\":\"b\",\"inner\":%.*s}", (int)len,
                     (const char *)body);
        hyb_bus_reply_unref(inner);
        return hyb_bus_request_reply(req, 200, out, (size_t)n, 0);
}

static int on_pong(hyb_bus_request *req, void *userdata)
{
        return hyb_bus_request_reply(req, 200, "{\"pong\":true}", 13, 0);
}

static int nested_b(char **a)
{
        hyb_bus *bus = connect_or_die(a[0], "org.example.b", "main");
        hyb_error e;
        int r = hyb_bus_register_procedure(bus, "relay", NULL, NULL, on_relay, NULL, NULL, &e);

        if (r < 0)
                return 1;
        r = serve_forever(bus);
        hyb_bus_unref(bus);
        return r;
}

static int nested_a(char **a)
{
        hyb_bus *bus = connect_or_die(a[0], "org.example.a", "main");
        hyb_bus_reply *reply = NULL;
        hyb_error e;
        const void *body;
        size_t len;
        int r = hyb_bus_register_procedure(bus, "pong", NULL, NULL, on_pong, NULL, NULL, &e);

        if (r < 0)
                return 1;
        r = hyb_bus_call(bus, B_NAME, "relay", "{}", 2, 0, 5000, &reply, &e);
        if (r < 0) {
                printf("error %d %s\n", hyb_err_to_status(r), e.message);
                hyb_bus_unref(bus);
                return 1;
        }
        body = hyb_bus_reply_get_body(reply, &len);
        printf("%.*s\n", (int)len, (const char *)body);
        hyb_bus_reply_unref(reply);
        hyb_bus_unref(bus);
        return 0;
}

static int timeouts(char **a)
{
        hyb_bus *bus = connect_or_die(a[0], "org.example.late", "caller");
        hyb_bus_reply *reply = NULL;
        hyb_error e;
        int n = atoi(a[3]), ms = atoi(a[4]), n504 = 0, other = 0, r;

        for (int i = 0; i < n; i++) {
                r = hyb_bus_call(bus, a[1], a[2], "{}", 2, 0, (uint32_t)ms, NULL, &e);
                if (r == HYB_E_CALLEE_TIMEOUT)
                        n504++;
                else {
                        other++;
                        fprintf(stderr, "call %d: %s %s\n", i, hyb_err_name(r), e.message);
                }
        }
        /* The connection is still usable and nothing is left pending in the broker. */
        r = hyb_bus_call_builtin(bus, "echo", "[42]", &reply, &e);
        printf("504 %d other %d echo %d\n", n504, other, r < 0 ? hyb_err_to_status(r) : 200);
        hyb_bus_reply_unref(reply);
        hyb_bus_unref(bus);
        return n504 == n && r == 0 ? 0 : 1;
}

static int flood(char **a)
{
        hyb_bus *bus = connect_or_die(a[0], "org.example.flood", "gen");
        int n = atoi(a[2]);
        size_t size = (size_t)atol(a[3]);
        char *body = malloc(size + 32);
        uint64_t delivered = 0, failed = 0;
        hyb_error e;
        int r, errors = 0;

        if (!body || size < 32)
                return 1;
        r = hyb_bus_register_event(bus, a[1], NULL, NULL, NULL, &e);
        if (r < 0) {
                fprintf(stderr, "register: %s\n", e.message);
                return 1;
        }
        for (int i = 0; i < n; i++) {
                uint32_t d = 0, f = 0;
                int k = snprintf(body, 32, "{\"seq\":%08d,\"pad\":\"", i);

                memset(body + k, 'x', size - (size_t)k - 2);
                memcpy(body + size - 2, "\"}", 2);
                /* Paced (4 events per 2 ms, 32 MiB/s of 16 KiB events): a subscriber that
                 * reads keeps up even when a loaded machine leaves it unscheduled for a
                 * while, so only one that stopped reading can fill its send queue. */
                if (i % 4 == 3)
                        usleep(2000);
                r = hyb_bus_fire(bus, a[1], body, size, 0, &d, &f);
                if (r < 0)
                        errors++;
                delivered += d;
                failed += f;
        }
        printf("delivered %llu failed %llu errors %d\n", (unsigned long long)delivered,
               (unsigned long long)failed, errors);
        free(body);
        hyb_bus_unref(bus);
        return errors ? 1 : 0;
}

typedef struct counter {
        int want, got, out_of_order;
} counter;

static void on_count(hyb_bus *bus, const hyb_bus_event *ev, void *userdata)
{
        counter *c = userdata;
        size_t len;
        const char *body = hyb_bus_event_get_body(ev, &len);

        if (len < 16 || atoi(body + 7) != c->got)
                c->out_of_order++;
        c->got++;
}

static int count(char **a)
{
        hyb_bus *bus = connect_or_die(a[0], "org.example.count", "sub");
        counter c = { .want = atoi(a[3]) };
        hyb_error e;
        int r = hyb_bus_subscribe(bus, a[1], a[2], on_count, &c, NULL, &e);

        if (r < 0) {
                fprintf(stderr, "subscribe: %s\n", e.message);
                return 1;
        }
        printf("ready\n");
        fflush(stdout);
        while (c.got < c.want) {
                while ((r = hyb_bus_process(bus)) > 0)
                        ;
                if (r >= 0 && c.got >= c.want)
                        break; /* the last ones came in this round: nothing more to wait for */
                if (r < 0 || (r = hyb_bus_wait(bus, 20 * 1000000u)) <= 0) {
                        fprintf(stderr, "count: stopped: %s\n", r ? hyb_strerror(r) : "timeout");
                        break;
                }
        }
        printf("got %d out_of_order %d\n", c.got, c.out_of_order);
        hyb_bus_unref(bus);
        return c.got == c.want && !c.out_of_order ? 0 : 1;
}

typedef struct fair {
        hyb_bus *bus;
        long want;
        long got;               /* __atomic: read by the other thread */
        int stop;
} fair;

static void fair_msg(const hyb_furi *target, const hyb_obj *payload, bool retain, void *ud)
{
        __atomic_add_fetch(&((fair *)ud)->got, 1, __ATOMIC_RELAXED);
}

static void *fair_reader(void *ud)
{
        fair *f = ud;

        int r = 0;

        while (r >= 0 && __atomic_load_n(&f->got, __ATOMIC_RELAXED) < f->want &&
               !__atomic_load_n(&f->stop, __ATOMIC_RELAXED)) {
                while ((r = hyb_bus_process(f->bus)) > 0)
                        ;
                if (r >= 0)
                        r = hyb_bus_wait(f->bus, 100000);
        }
        return NULL;
}

static int replay_fair(char **a)
{
        long n = atol(a[2]), many = atol(a[3]), a_at_end;
        fair fa = { .want = n * many }, fb = { .want = n };
        pthread_t t;
        hyb_error e;
        char ra[32], rb[32];
        int r = 0;

        snprintf(ra, sizeof ra, "many%d", (int)getpid());
        snprintf(rb, sizeof rb, "one%d", (int)getpid());
        fa.bus = connect_or_die(a[0], "org.example.fair", ra);
        fb.bus = connect_or_die(a[0], "org.example.fair", rb);
        for (long i = 0; i < many && r >= 0; i++)
                r = hyb_bus_store_subscribe(fa.bus, a[1], HYB_SUBSCRIBE_REPLAY, fair_msg, &fa,
                                            NULL, &e);
        if (r < 0) {
                fprintf(stderr, "replay-fair: subscribe: %s\n", e.message);
                return 1;
        }
        pthread_create(&t, NULL, fair_reader, &fa);
        r = hyb_bus_store_subscribe(fb.bus, a[1], HYB_SUBSCRIBE_REPLAY, fair_msg, &fb, NULL, &e);
        while (r >= 0 && fb.got < n) {
                while ((r = hyb_bus_process(fb.bus)) > 0 && fb.got < n)
                        ;
                if (r >= 0 && fb.got < n)
                        r = hyb_bus_wait(fb.bus, 20 * 1000000u);
                if (r == 0) {
                        fprintf(stderr, "replay-fair: nothing for 20 s\n");
                        break;
                }
        }
        a_at_end = __atomic_load_n(&fa.got, __ATOMIC_RELAXED);
        __atomic_store_n(&fa.stop, 1, __ATOMIC_RELAXED);
        pthread_join(t, NULL);
        printf("one replay: %ld of %ld; the other connection then had %ld of %ld\n", fb.got, n,
               a_at_end, n * many);
        hyb_bus_unref(fa.bus);
        hyb_bus_unref(fb.bus);
        return fb.got == n && a_at_end < n * many / 2 ? 0 : 1;
}

static const struct {
        const char *name;
        int nargs;
        int (*fn)(char **a);
} modes[] = {
        { "echo-server", 2, echo_server }, { "load", 5, load },
        { "nested-a", 1, nested_a },       { "nested-b", 1, nested_b },
        { "timeouts", 5, timeouts },       { "flood", 4, flood },
        { "count", 4, count },             { "edge-server", 2, edge_server },
        { "replay-fair", 4, replay_fair },
};

int main(int argc, char **argv)
{
        signal(SIGPIPE, SIG_IGN);
        for (size_t i = 0; argc > 1 && i < sizeof(modes) / sizeof(modes[0]); i++)
                if (strcmp(argv[1], modes[i].name) == 0 && argc - 2 == modes[i].nargs)
                        return modes[i].fn(argv + 2);
        fprintf(stderr, "usage: see the comment at the top of bus-probe.c\n");
        return 2;
}
