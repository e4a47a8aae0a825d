/* SPDX-License-Identifier: MIT */
/*
 * The bounds of the cluster backend of programs without a daemon (hyb_cluster_backend_new,
 * doc/cluster.md "Programs without a daemon"), through the public API; cluster-embed.sh
 * runs it.  Each case prints `ok <what>` or `FAIL <what>: <why>` lines.
 *
 *   cluster-embed-probe subs URL       max_subscriptions=2: a third is HYB_E_TOO_MANY,
 *                                      one more after an unsubscribe is taken
 *   cluster-embed-probe pending URL    max_pending_messages=5: 12 messages while the program
 *                                      does not process: 5 delivered, process says
 *                                      HYB_E_INSUFFICIENT_STORAGE once, then it goes on
 *   cluster-embed-probe threads URL    4 threads write and read back 50 values each under one
 *                                      subscription: each read sees its write, the
 *                                      subscriber gets all 200, each thread's in order
 *   cluster-embed-probe reads URL FILE max_pending_reads=1 against a broker that never
 *                                      answers a SUBSCRIBE (it notes in FILE
 *                                      the filters subscribed):
 *                                      a second read is HYB_E_TOO_MANY, the first ends at
 *                                      its deadline with HYB_E_CALLEE_TIMEOUT
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hybrid/hybrid.h>
#include <hybrid/bus-store.h>

static int fails;

static void report(bool good, const char *what, const char *why)
{
        if (good)
                printf("ok %s\n", what);
        else {
                printf("FAIL %s: %s\n", what, why);
                fails++;
        }
        fflush(stdout);
}

static hyb_furi *F(const char *s)
{
        hyb_furi *f = NULL;

        if (hyb_furi_parse(s, (size_t)-1, NULL, &f, NULL) < 0) {
                fprintf(stderr, "bad fURI %s\n", s);
                exit(2);
        }
        return f;
}

static hyb_backend *open_with(const char *url, const char *opts)
{
        char buf[1024];
        hyb_backend *b = NULL;
        hyb_error e;
        int r;

        hyb_error_clear(&e);
        snprintf(buf, sizeof buf, "%s?%s", url, opts);
        r = hyb_cluster_backend_new(buf, &b, &e);
        if (r < 0) {
                fprintf(stderr, "hyb_cluster_backend_new(%s): %s %s\n", buf, hyb_err_name(r),
                        e.message);
                exit(2);
        }
        return b;
}

static unsigned n_msgs;

static void count_msg(const hyb_furi *target, const hyb_obj *payload, bool retain, void *ud)
{
        n_msgs++;
}

static int case_subs(const char *url)
{
        hyb_backend *b = open_with(url, "max_subscriptions=2");
        hyb_slot *s1 = NULL, *s2 = NULL, *s3 = NULL;
        hyb_furi *p1 = F("//s1/#"), *p2 = F("//s2/#"), *p3 = F("//s3/#");
        hyb_error e;
        int r;
        char why[300];

        hyb_error_clear(&e);
        r = hyb_backend_subscribe(b, p1, 0, count_msg, NULL, &s1, &e);
        if (r >= 0)
                r = hyb_backend_subscribe(b, p2, 0, count_msg, NULL, &s2, &e);
        snprintf(why, sizeof why, "%s %s", hyb_err_name(r), e.message);
        report(r >= 0, "two subscriptions are taken", why);
        r = hyb_backend_subscribe(b, p3, 0, count_msg, NULL, &s3, &e);
        snprintf(why, sizeof why, "%s %s", hyb_err_name(r), e.message);
        report(r == HYB_E_TOO_MANY && strstr(e.message, "max_subscriptions"),
               "a third is refused HYB_E_TOO_MANY naming max_subscriptions", why);
        hyb_slot_unref(s1);
        hyb_error_clear(&e);
        r = hyb_backend_subscribe(b, p3, 0, count_msg, NULL, &s3, &e);
        snprintf(why, sizeof why, "%s %s", hyb_err_name(r), e.message);
        report(r >= 0, "after an unsubscribe one more is taken", why);
        hyb_slot_unref(s2);
        hyb_slot_unref(s3);
        hyb_furi_unref(p1);
        hyb_furi_unref(p2);
        hyb_furi_unref(p3);
        hyb_backend_unref(b);
        return 0;
}

static int case_pending(const char *url)
{
        hyb_backend *b = open_with(url, "max_pending_messages=5");
        hyb_furi *p = F("//q/#"), *end = F("//q/end"), *k = NULL;
        hyb_slot *s = NULL;
        hyb_obj *v = NULL;
        hyb_error e;
        char why[300], name[32];
        int r;

        hyb_error_clear(&e);
        r = hyb_backend_subscribe(b, p, 0, count_msg, NULL, &s, &e);
        snprintf(why, sizeof why, "%s %s", hyb_err_name(r), e.message);
        report(r >= 0, "subscribed to //q/#", why);
        for (int i = 0; r >= 0 && i < 12; i++) {
                snprintf(name, sizeof name, "//q/k%d", i);
                k = F(name);
                hyb_obj_new_int(i, &v);
                r = hyb_backend_write(b, k, v, HYB_WRITE_TRANSIENT, &e);
                hyb_obj_unref(v);
                hyb_furi_unref(k);
        }
        /* a retained write under a subscription returns once its own copy came back, so
         * every transient one before it came too */
        if (r >= 0) {
                hyb_obj_new_int(99, &v);
                r = hyb_backend_write(b, end, v, 0, &e);
                hyb_obj_unref(v);
        }
        snprintf(why, sizeof why, "%s %s", hyb_err_name(r), e.message);
        report(r >= 0, "13 writes acknowledged without processing", why);
        r = hyb_backend_process(b);
        snprintf(why, sizeof why, "process %s, %u delivered", hyb_err_name(r), n_msgs);
        report(n_msgs == 5, "5 messages (max_pending_messages) were kept and delivered", why);
        report(r == HYB_E_INSUFFICIENT_STORAGE,
               "process says HYB_E_INSUFFICIENT_STORAGE: messages were dropped", why);
        n_msgs = 0;
        hyb_obj_new_int(100, &v);
        r = hyb_backend_write(b, end, v, 0, &e);
        hyb_obj_unref(v);
        r = r < 0 ? r : hyb_backend_process(b);
        snprintf(why, sizeof why, "process %s, %u delivered", hyb_err_name(r), n_msgs);
        report(r == 1 && n_msgs == 1, "then the next message is delivered, process says 1", why);
        hyb_slot_unref(s);
        hyb_furi_unref(p);
        hyb_furi_unref(end);
        hyb_backend_unref(b);
        return 0;
}

struct rd {
        hyb_backend *b;
        const char *furi;
        int r;
        hyb_error e;
};

static void *reader(void *p)
{
        struct rd *x = p;
        hyb_furi *f = F(x->furi);
        hyb_obj *v = NULL;

        hyb_error_clear(&x->e);
        x->r = hyb_backend_read(x->b, f, 0, &v, &x->e);
        hyb_obj_unref(v);
        hyb_furi_unref(f);
        return NULL;
}

static int case_reads(const char *url, const char *file)
{
        hyb_backend *b = open_with(url, "max_pending_reads=1&read_timeout_ms=3000");
        struct rd first = { b, "//r/one", 0 }, second = { b, "//r/two", 0 };
        pthread_t t;
        char why[300];

        pthread_create(&t, NULL, reader, &first);
        /* the broker notes the first read's SUBSCRIBE (of r/one): that read is pending */
        bool seen = false;
        for (int i = 0; i < 3000 && !seen; i++) {
                char line[256];
                FILE *f = fopen(file, "re");
                while (f && fgets(line, sizeof line, f))
                        seen |= strcmp(line, "r/one\n") == 0;
                if (f)
                        fclose(f);
                if (!seen)
                        usleep(10000);
        }
        report(seen, "the first read subscribed to r/one", "no SUBSCRIBE of r/one came");
        reader(&second);
        snprintf(why, sizeof why, "%s %s", hyb_err_name(second.r), second.e.message);
        report(second.r == HYB_E_TOO_MANY && strstr(second.e.message, "max_pending_reads"),
               "a second read while one waits is refused HYB_E_TOO_MANY", why);
        pthread_join(t, NULL);
        snprintf(why, sizeof why, "%s %s", hyb_err_name(first.r), first.e.message);
        report(first.r == HYB_E_CALLEE_TIMEOUT && strstr(first.e.message, "did not acknowledge"),
               "the first ends at its deadline: HYB_E_CALLEE_TIMEOUT (no SUBACK)", why);
        hyb_backend_unref(b);
        return 0;
}

#define N_THREADS 4
#define N_WRITES 50

struct wr {
        hyb_backend *b;
        int id, bad;
        char why[300];
};

static void *writer(void *p)
{
        struct wr *w = p;
        char name[64];
        hyb_error e;

        for (int i = 0; i < N_WRITES && !w->bad; i++) {
                hyb_obj *v = NULL, *got = NULL;
                hyb_furi *f;
                int r;

                snprintf(name, sizeof name, "//t/w%d", w->id);
                f = F(name);
                hyb_obj_new_int(i, &v);
                hyb_error_clear(&e);
                r = hyb_backend_write(w->b, f, v, 0, &e);
                if (r >= 0)
                        r = hyb_backend_read(w->b, f, 0, &got, &e);
                if (r < 0 || !hyb_obj_equal(v, got)) {
                        w->bad = 1;
                        snprintf(w->why, sizeof w->why, "thread %d write %d: %s %s", w->id, i,
                                 hyb_err_name(r), e.message);
                }
                hyb_obj_unref(v);
                hyb_obj_unref(got);
                hyb_furi_unref(f);
        }
        return NULL;
}

static int64_t last[N_THREADS];
static int order_bad;

static void order_msg(const hyb_furi *target, const hyb_obj *payload, bool retain, void *ud)
{
        const char *s = hyb_furi_get_str(target);
        int id = s[5] - '0';
        int64_t v = hyb_obj_get_kind(payload) == HYB_OBJ_INT ? hyb_obj_get_int(payload) : -2;

        n_msgs++;
        if (id < 0 || id >= N_THREADS || v != last[id] + 1)
                order_bad++;
        else
                last[id] = v;
}

static int case_threads(const char *url)
{
        hyb_backend *b = open_with(url, "max_pending_messages=1000");
        hyb_furi *p = F("//t/#");
        struct wr w[N_THREADS];
        pthread_t t[N_THREADS];
        hyb_slot *s = NULL;
        hyb_error e;
        char why[300];
        int r, bad = 0;

        hyb_error_clear(&e);
        for (int i = 0; i < N_THREADS; i++)
                last[i] = -1;
        r = hyb_backend_subscribe(b, p, 0, order_msg, NULL, &s, &e);
        snprintf(why, sizeof why, "%s %s", hyb_err_name(r), e.message);
        report(r >= 0, "subscribed to //t/#", why);
        for (int i = 0; i < N_THREADS; i++) {
                w[i] = (struct wr){ b, i, 0, "" };
                pthread_create(&t[i], NULL, writer, &w[i]);
        }
        for (int i = 0; i < N_THREADS; i++) {
                pthread_join(t[i], NULL);
                if (w[i].bad && !bad++)
                        report(false, "each thread reads back what it wrote", w[i].why);
        }
        if (!bad)
                report(true, "each thread reads back what it wrote", "");
        /* every write returned after its copy came back: all are queued by now */
        r = hyb_backend_process(b);
        snprintf(why, sizeof why, "%u messages, %d out of order, process %s", n_msgs, order_bad,
                 hyb_err_name(r));
        report(n_msgs == N_THREADS * N_WRITES && order_bad == 0,
               "the subscriber got all 200 writes, each thread's in order", why);
        hyb_slot_unref(s);
        hyb_furi_unref(p);
        hyb_backend_unref(b);
        return 0;
}

/*
 * A value over 1 MiB (doc/cluster.md: no reader takes a message over 1 MiB, not even this
 * program) is refused by the write with HYB_E_LIMIT, not published: published, the write
 * would succeed and no read would ever see it (the caller checks the broker retains nothing
 * on bigw/x).  A value of exactly the bound is taken.
 */
static int case_big(const char *url)
{
        hyb_backend *b = open_with(url, "qos=1");
        hyb_furi *k = F("//bigw/x"), *k2 = F("//bigw/y");
        size_t n = 1024u * 1024u + 16u;
        char *s = malloc(n), why[300];
        hyb_obj *v = NULL, *got = NULL;
        hyb_error e;
        int r;

        if (!s)
                exit(2);
        memset(s, 'a', n);
        if (hyb_obj_new_str(s, n, &v) < 0)
                exit(2);
        hyb_error_clear(&e);
        r = hyb_backend_write(b, k, v, 0, &e);
        snprintf(why, sizeof why, "%s %s", hyb_err_name(r), e.message);
        report(r == HYB_E_LIMIT && strstr(e.message, "1048576"),
               "a write of a str of 1 MiB + 16 bytes is refused HYB_E_LIMIT naming 1048576", why);
        hyb_obj_unref(v);
        v = NULL;
        /* the JSON text "aaa...": two quotes beside the letters */
        if (hyb_obj_new_str(s, 1024u * 1024u - 2u, &v) < 0)
                exit(2);
        hyb_error_clear(&e);
        r = hyb_backend_write(b, k2, v, 0, &e);
        if (r >= 0)
                r = hyb_backend_read(b, k2, 0, &got, &e);
        snprintf(why, sizeof why, "%s %s", hyb_err_name(r), e.message);
        report(r >= 0 && got && hyb_obj_get_kind(got) == HYB_OBJ_STR &&
                       hyb_obj_get_str(got, &n) && n == 1024u * 1024u - 2u,
               "a str whose JSON is exactly 1 MiB is written and read back", why);
        hyb_obj_unref(got);
        hyb_obj_unref(v);
        free(s);
        hyb_furi_unref(k);
        hyb_furi_unref(k2);
        hyb_backend_unref(b);
        return 0;
}

/*
 * A read covered by another thread's subscription, which that thread drops while the read
 * waits for its marker: the read must still give the broker's retained value (the filter's
 * values leave the mirror when its last user goes; a covered read is a user too).
 */
struct churn {
        hyb_backend *b;
        atomic_bool stop;
        unsigned rounds;
};

static void *churn_subs(void *p)
{
        struct churn *c = p;
        hyb_furi *pat = F("//ur/#");

        while (!atomic_load(&c->stop)) {
                hyb_slot *s = NULL;

                if (hyb_backend_subscribe(c->b, pat, 0, count_msg, NULL, &s, NULL) >= 0)
                        hyb_slot_unref(s);
                c->rounds++;
        }
        hyb_furi_unref(pat);
        return NULL;
}

static int case_unsub_race(const char *url)
{
        hyb_backend *b = open_with(url, "max_pending_messages=100000");
        struct churn c = { .b = b };
        hyb_furi *k = F("//ur/k");
        hyb_obj *v = NULL;
        hyb_error e;
        pthread_t t;
        char why[300];
        int r, reads = 0, wrong = 0;

        hyb_error_clear(&e);
        hyb_obj_new_int(7, &v);
        r = hyb_backend_write(b, k, v, 0, &e);
        snprintf(why, sizeof why, "%s %s", hyb_err_name(r), e.message);
        report(r >= 0, "//ur/k = 7 written", why);
        hyb_obj_unref(v);
        pthread_create(&t, NULL, churn_subs, &c);
        why[0] = 0;
        for (; reads < 2000; reads++) {
                hyb_obj *got = NULL;

                hyb_error_clear(&e);
                r = hyb_backend_read(b, k, 0, &got, &e);
                if (r < 0 || !got || hyb_obj_get_kind(got) != HYB_OBJ_INT) {
                        if (!wrong++)
                                snprintf(why, sizeof why, "read %d: %s %s %s", reads,
                                         hyb_err_name(r), e.message,
                                         got && hyb_obj_is_noobj(got) ? "(nothing)" : "");
                }
                hyb_obj_unref(got);
                if (reads % 64 == 0)
                        (void)hyb_backend_process(b);
        }
        atomic_store(&c.stop, true);
        pthread_join(t, NULL);
        report(wrong == 0, "2000 reads of //ur/k while another thread subscribes to //ur/# and "
                           "drops it again all give 7", why);
        printf("# %d wrong of %d reads, %u subscription rounds\n", wrong, reads, c.rounds);
        hyb_furi_unref(k);
        hyb_backend_unref(b);
        return 0;
}

int main(int argc, char **argv)
{
        if (argc >= 3 && strcmp(argv[1], "subs") == 0)
                case_subs(argv[2]);
        else if (argc >= 3 && strcmp(argv[1], "pending") == 0)
                case_pending(argv[2]);
        else if (argc >= 3 && strcmp(argv[1], "threads") == 0)
                case_threads(argv[2]);
        else if (argc >= 3 && strcmp(argv[1], "unsub-race") == 0)
                case_unsub_race(argv[2]);
        else if (argc >= 3 && strcmp(argv[1], "big") == 0)
                case_big(argv[2]);
        else if (argc >= 4 && strcmp(argv[1], "reads") == 0)
                case_reads(argv[2], argv[3]);
        else {
                fprintf(stderr, "usage: %s subs|pending|threads|big|unsub-race URL | reads URL FILE\n", argv[0]);
                return 2;
        }
        return fails ? 1 : 0;
}
