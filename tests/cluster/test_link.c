/* SPDX-License-Identifier: MIT */
/*
 * lib/cluster/link.c against a real mosquitto broker on a free loopback port (the cases
 * that need one say so and pass without it when mosquitto is not installed): connection,
 * subscribe acknowledged by SUBACK, publish acknowledged by PUBACK, dispatch by topic
 * prefix, reconnection after the broker restarts, the broker URL grammar, and libmosquitto's
 * own log lines made only while a debug line is wanted.
 */
#include <check.h>
#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <mqtt_protocol.h>

#include "cluster/link.h"
#include "hybrid/log.h"
#include "suites.h"
#include "testutil.h"

START_TEST(test_url)
{
        char host[64];
        int port = 0;
        bool tls = true;

        ck_assert_int_eq(cluster_parse_url("mqtt://127.0.0.1:1999", host, sizeof host, &port, &tls), 0);
        ck_assert_str_eq(host, "127.0.0.1");
        ck_assert_int_eq(port, 1999);
        ck_assert(!tls);
        ck_assert_int_eq(cluster_parse_url("mqtts://broker.example", host, sizeof host, &port, &tls), 0);
        ck_assert_str_eq(host, "broker.example");
        ck_assert_int_eq(port, 8883);
        ck_assert(tls);
        ck_assert_int_eq(cluster_parse_url("mqtt://[::1]:7", host, sizeof host, &port, &tls), 0);
        ck_assert_str_eq(host, "::1");
        ck_assert_int_eq(port, 7);
        ck_assert_int_eq(cluster_parse_url("mqtt://h", host, sizeof host, &port, &tls), 0);
        ck_assert_int_eq(port, 1883);
        static const char *const bad[] = {
                "http://h:1", "mqtt://", "mqtt://:1", "mqtt://h:0", "mqtt://h:65536", "mqtt://h:x",
                "mqtt://h/path", "mqtt://[::1", "mqtt://[::1]x", "h:1883", NULL,
        };
        for (size_t i = 0; bad[i]; i++)
                ck_assert_msg(cluster_parse_url(bad[i], host, sizeof host, &port, &tls) == -EINVAL,
                              "%s accepted", bad[i]);
}
END_TEST

/* ---- a broker ---- */

static const char *mosquitto_path(void)
{
        static const char *const paths[] = { "/usr/sbin/mosquitto", "/usr/bin/mosquitto",
                                             "/usr/local/sbin/mosquitto" };
        for (size_t i = 0; i < sizeof paths / sizeof *paths; i++)
                if (access(paths[i], X_OK) == 0)
                        return paths[i];
        return NULL;
}

static int free_port(void)
{
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t len = sizeof a;
        int fd = socket(AF_INET, SOCK_STREAM, 0), port;

        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
        ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
        port = ntohs(a.sin_port);
        close(fd);
        return port;
}

static bool port_open(int port)
{
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                                 .sin_port = htons((uint16_t)port) };
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        bool ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;

        close(fd);
        return ok;
}

static pid_t broker_start(const char *dir, int port)
{
        char conf[512], text[1024];
        FILE *f;
        pid_t pid;

        snprintf(conf, sizeof conf, "%s/mosquitto.conf", dir);
        snprintf(text, sizeof text,
                 "listener %d 127.0.0.1\nallow_anonymous true\npersistence true\n"
                 "persistence_location %s/\n%s",
                 port, dir, geteuid() == 0 ? "user root\n" : "");
        f = fopen(conf, "w");
        ck_assert_ptr_nonnull(f);
        fputs(text, f);
        fclose(f);
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                char log[600];
                snprintf(log, sizeof log, "%s/mosquitto.log", dir);
                (void)!freopen(log, "a", stdout);
                (void)!freopen(log, "a", stderr);
                execl(mosquitto_path(), "mosquitto", "-c", conf, (char *)NULL);
                _exit(127);
        }
        for (int i = 0; i < 1000 && !port_open(port); i++)
                usleep(10000);
        ck_assert_msg(port_open(port), "mosquitto did not start");
        return pid;
}

static void broker_stop(pid_t pid)
{
        kill(pid, SIGTERM);
        waitpid(pid, NULL, 0);
}

/* ---- a loop ---- */

typedef struct seen {
        int connected, lost, suback, suback_r, puback, puback_r;
        bool session;
        char topics[16][64];
        char payloads[16][64];
        bool retain[16];
        int n_msgs, n_ctl;
} seen;

static void on_state(cluster_link *l, bool connected, bool session, void *ud)
{
        seen *s = ud;
        s->session = session;
        if (connected)
                s->connected++;
        else
                s->lost++;
}

static void on_suback(cluster_link *l, int r, void *ud)
{
        seen *s = ud;
        s->suback++;
        s->suback_r = r;
}

static void on_puback(cluster_link *l, int r, void *ud)
{
        seen *s = ud;
        s->puback++;
        s->puback_r = r;
}

static void on_msg(cluster_link *l, const char *topic, const void *p, size_t len, bool retain,
                   int qos, const mosquitto_property *props, void *ud)
{
        seen *s = ud;
        if (s->n_msgs < 16) {
                snprintf(s->topics[s->n_msgs], 64, "%s", topic);
                snprintf(s->payloads[s->n_msgs], 64, "%.*s", (int)len, (const char *)p);
                s->retain[s->n_msgs] = retain;
        }
        s->n_msgs++;
}

static void on_ctl(cluster_link *l, const char *topic, const void *p, size_t len, bool retain,
                   int qos, const mosquitto_property *props, void *ud)
{
        ((seen *)ud)->n_ctl++;
}

/* Runs the loop until *v >= want, at most 20 s. */
static void run_until(struct event_base *base, const int *v, int want)
{
        struct timeval tick = { 0, 20000 };
        for (int i = 0; i < 1000 && *v < want; i++) {
                event_base_loopexit(base, &tick);
                event_base_dispatch(base);
        }
        ck_assert_int_ge(*v, want);
}

START_TEST(test_pubsub)
{
        char *dir;
        int port;
        pid_t pid;
        struct event_base *base;
        cluster_options o;
        cluster_link *l = NULL;
        seen s = { 0 };
        char url[64];
        hyb_error e;

        if (!mosquitto_path())
                return; /* mosquitto not installed */
        dir = test_tmpdir();
        port = free_port();
        pid = broker_start(dir, port);
        base = event_base_new();
        cluster_options_init(&o);
        snprintf(url, sizeof url, "mqtt://127.0.0.1:%d", port);
        o.broker = url;
        hyb_error_clear(&e);
        ck_assert_int_eq(cluster_link_new(base, &o, "hybrid-test-link", NULL, NULL, &l, &e), 0);
        ck_assert_str_eq(cluster_link_get_client_id(l), "hybrid-test-link");
        ck_assert_int_eq(cluster_link_on_state(l, on_state, &s), 0);
        ck_assert_int_eq(cluster_link_on_message(l, "", on_msg, &s), 0);
        ck_assert_int_eq(cluster_link_on_message(l, "_hybrid/", on_ctl, &s), 0);
        /* not connected yet: publish says so, nothing is sent */
        ck_assert_int_eq(cluster_link_publish(l, "t/x", "1", 1, 1, false, NULL, NULL, NULL),
                         -ENOTCONN);
        ck_assert_int_eq(cluster_link_subscribe(l, "t/#", 1, on_suback, &s), 0);
        ck_assert_int_eq(cluster_link_subscribe(l, "_hybrid/#", 1, NULL, NULL), 0);
        ck_assert_int_eq(cluster_link_subscribe(l, "bad/#/x", 1, NULL, NULL), -EINVAL);
        run_until(base, &s.connected, 1);
        run_until(base, &s.suback, 1);
        ck_assert_int_eq(s.suback_r, 0);
        /* a second subscription of the same filter is acknowledged from the loop */
        ck_assert_int_eq(cluster_link_subscribe(l, "t/#", 1, on_suback, &s), 0);
        ck_assert_int_eq(s.suback, 1);
        run_until(base, &s.suback, 2);
        ck_assert_int_eq(cluster_link_publish(l, "t/a", "21.5", 4, 1, true, NULL, on_puback, &s), 0);
        run_until(base, &s.puback, 1);
        ck_assert_int_eq(s.puback_r, 0);
        ck_assert_int_eq(cluster_link_publish(l, "t/b", "x", 1, 1, false, NULL, on_puback, &s), 0);
        ck_assert_int_eq(cluster_link_publish(l, "_hybrid/c", "y", 1, 0, false, NULL, on_puback, &s), 0);
        run_until(base, &s.n_msgs, 2);
        run_until(base, &s.n_ctl, 1);
        run_until(base, &s.puback, 3);
        ck_assert_str_eq(s.topics[0], "t/a");
        ck_assert_str_eq(s.payloads[0], "21.5");
        ck_assert(s.retain[0]); /* retain as published */
        ck_assert_str_eq(s.topics[1], "t/b");
        ck_assert(!s.retain[1]);
        ck_assert_int_eq(s.n_msgs, 2); /* _hybrid/c went to the longer prefix only */

        /* the broker restarts (persistence on): the link comes back by itself, and its
         * session (kept by the broker: clean start off, a session expiry) still has the
         * subscription */
        broker_stop(pid);
        run_until(base, &s.lost, 1);
        ck_assert(!cluster_link_is_connected(l));
        ck_assert_int_eq(cluster_link_publish(l, "t/x", "1", 1, 1, false, NULL, NULL, NULL),
                         -ENOTCONN);
        pid = broker_start(dir, port);
        run_until(base, &s.connected, 2);
        ck_assert_uint_eq(cluster_link_get_connects(l), 2);
        ck_assert_int_eq(cluster_link_publish(l, "t/c", "after", 5, 1, false, NULL, on_puback,
                                              &s), 0);
        run_until(base, &s.puback, 4);
        run_until(base, &s.n_msgs, 3);
        ck_assert_str_eq(s.topics[2], "t/c");
        ck_assert_str_eq(s.payloads[2], "after");
        ck_assert_int_eq(cluster_link_subscription_state(l, "t/#"), 1);
        ck_assert_int_eq(cluster_link_subscription_state(l, "x/#"), -ENOENT);

        /* the broker restarts without its persistence file: the session is gone, and the
         * link subscribes again (the retained value came back with it before: now none) */
        broker_stop(pid);
        run_until(base, &s.lost, 2);
        {
                char db[600];
                snprintf(db, sizeof db, "%s/mosquitto.db", dir);
                ck_assert_int_eq(unlink(db), 0);
        }
        pid = broker_start(dir, port);
        run_until(base, &s.connected, 3);
        ck_assert(!s.session);
        ck_assert_int_eq(cluster_link_publish(l, "t/d", "again", 5, 1, false, NULL, on_puback,
                                              &s), 0);
        run_until(base, &s.n_msgs, 4);
        ck_assert_str_eq(s.topics[3], "t/d");

        ck_assert_int_eq(cluster_link_unsubscribe(l, "t/#"), 0);
        ck_assert_int_eq(cluster_link_unsubscribe(l, "t/#"), 0);
        ck_assert_int_eq(cluster_link_unsubscribe(l, "t/#"), -ENOENT);

        l = cluster_link_free(l);

        /* the daemon restarted: a new link with the same client id starts a new session (the
         * old one's subscription t/# is gone), then keeps that one */
        seen s2 = { 0 };
        ck_assert_int_eq(cluster_link_new(base, &o, "hybrid-test-link", NULL, NULL, &l, &e), 0);
        ck_assert_int_eq(cluster_link_on_state(l, on_state, &s2), 0);
        ck_assert_int_eq(cluster_link_on_message(l, "", on_msg, &s2), 0);
        ck_assert_int_eq(cluster_link_subscribe(l, "z/#", 1, on_suback, &s2), 0);
        run_until(base, &s2.connected, 1);
        ck_assert(!s2.session);
        run_until(base, &s2.suback, 1);
        ck_assert_int_eq(cluster_link_publish(l, "t/y", "1", 1, 1, false, NULL, NULL, NULL), 0);
        ck_assert_int_eq(cluster_link_publish(l, "z/y", "2", 1, 1, false, NULL, NULL, NULL), 0);
        run_until(base, &s2.n_msgs, 1);
        ck_assert_str_eq(s2.topics[0], "z/y"); /* t/y, published first, did not come */
        l = cluster_link_free(l);
        event_base_free(base);
        broker_stop(pid);
        test_rmrf(dir);
        free(dir);
}
END_TEST

/* ---- the "seq" numbers with a key ---- */

static char last_seq[512], last_mac[512];

static void on_msg_seq(cluster_link *l, const char *topic, const void *p, size_t len, bool retain,
                       int qos, const mosquitto_property *props, void *ud)
{
        char *name = NULL, *value = NULL;

        last_mac[0] = 0;
        for (const mosquitto_property *q = mosquitto_property_read_string_pair(
                     props, MQTT_PROP_USER_PROPERTY, &name, &value, false);
             q; q = mosquitto_property_read_string_pair(q, MQTT_PROP_USER_PROPERTY, &name, &value,
                                                         true)) {
                if (strcmp(name, CLUSTER_SEQ_PROPERTY) == 0)
                        snprintf(last_seq, sizeof last_seq, "%s", value);
                else if (strcmp(name, CLUSTER_SEQ_MAC_PROPERTY) == 0)
                        snprintf(last_mac, sizeof last_mac, "%s", value);
                free(name);
                free(value);
                name = value = NULL;
        }
        on_msg(l, topic, p, len, retain, qos, props, ud);
}

/* A plain MQTT 5 client of the broker publishes payload to topic with the "seq" property
 * value seq (QoS 0). */
static void forge(int port, const char *topic, const char *payload, const char *seq,
                  const char *mac)
{
        struct mosquitto *m = mosquitto_new(NULL, true, NULL);
        mosquitto_property *pr = NULL;

        ck_assert_ptr_nonnull(m);
        ck_assert_int_eq(mosquitto_int_option(m, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5),
                         MOSQ_ERR_SUCCESS);
        ck_assert_int_eq(mosquitto_connect(m, "127.0.0.1", port, 30), MOSQ_ERR_SUCCESS);
        ck_assert_int_eq(mosquitto_property_add_string_pair(&pr, MQTT_PROP_USER_PROPERTY,
                                                            CLUSTER_SEQ_PROPERTY, seq),
                         MOSQ_ERR_SUCCESS);
        if (mac)
                ck_assert_int_eq(mosquitto_property_add_string_pair(&pr, MQTT_PROP_USER_PROPERTY,
                                                                    CLUSTER_SEQ_MAC_PROPERTY, mac),
                                 MOSQ_ERR_SUCCESS);
        ck_assert_int_eq(mosquitto_publish_v5(m, NULL, topic, (int)strlen(payload), payload, 0,
                                              false, pr),
                         MOSQ_ERR_SUCCESS);
        mosquitto_property_free_all(&pr);
        ck_assert_int_eq(mosquitto_disconnect(m), MOSQ_ERR_SUCCESS);
        for (int i = 0; i < 100 && mosquitto_loop(m, 100, 1) == MOSQ_ERR_SUCCESS; i++)
                ;
        mosquitto_destroy(m);
}

/* With the cluster's key (cluster.call_secret_file) a client of the broker that numbers its
 * messages as another daemon's next ones (its origin and the numbers that follow the one
 * it saw, with no "seq-mac", a made-up one, or a real one of another number) makes the receiver drop none of that daemon's
 * messages; a real redelivery (the same property again) is still taken once.  Without the
 * key each forged number was a "duplicate" of the daemon's message to come. */
START_TEST(test_seq_forged)
{
        static const char key[] = "0123456789abcdef0123456789abcdef";
        char *dir, url[64], v[600];
        int port;
        pid_t pid;
        struct event_base *base;
        cluster_options o;
        cluster_link *a = NULL, *b = NULL;
        seen sa = { 0 }, sb = { 0 };
        unsigned long long n;
        hyb_error e;

        if (!mosquitto_path())
                return; /* mosquitto not installed */
        dir = test_tmpdir();
        port = free_port();
        pid = broker_start(dir, port);
        base = event_base_new();
        cluster_options_init(&o);
        snprintf(url, sizeof url, "mqtt://127.0.0.1:%d", port);
        o.broker = url;
        ck_assert_int_eq(cluster_link_new(base, &o, "hybrid-a", NULL, NULL, &a, &e), 0);
        ck_assert_int_eq(cluster_link_new(base, &o, "hybrid-b", NULL, NULL, &b, &e), 0);
        ck_assert_int_eq(cluster_link_set_seq_key(a, key, sizeof key - 1), 0);
        ck_assert_int_eq(cluster_link_set_seq_key(b, key, sizeof key - 1), 0);
        ck_assert_int_eq(cluster_link_on_state(a, on_state, &sa), 0);
        ck_assert_int_eq(cluster_link_on_state(b, on_state, &sb), 0);
        ck_assert_int_eq(cluster_link_on_message(b, "", on_msg_seq, &sb), 0);
        ck_assert_int_eq(cluster_link_subscribe(b, "t/#", 1, on_suback, &sb), 0);
        run_until(base, &sa.connected, 1);
        run_until(base, &sb.suback, 1);
        ck_assert_int_eq(cluster_link_publish(a, "t/a", "1", 1, 1, false, NULL, NULL, NULL), 0);
        run_until(base, &sb.n_msgs, 1);
        ck_assert_int_eq(sscanf(last_seq, "%llu hybrid-a", &n), 1);
        ck_assert_int_eq(strlen(last_mac), 32);
        /* the next three numbers of hybrid-a, forged: taken as plain messages, not counted */
        snprintf(v, sizeof v, "%llu hybrid-a", n + 1);
        forge(port, "t/f", "f", v, NULL);
        snprintf(v, sizeof v, "%llu hybrid-a", n + 2);
        forge(port, "t/f", "f", v, "0123456789abcdef0123456789abcdef");
        snprintf(v, sizeof v, "%llu hybrid-a", n + 3);
        forge(port, "t/a", "f", v, last_mac); /* a real MAC, of another number */
        run_until(base, &sb.n_msgs, 4);
        /* the real ones with those numbers: all taken */
        ck_assert_int_eq(cluster_link_publish(a, "t/a", "2", 1, 1, false, NULL, NULL, NULL), 0);
        ck_assert_int_eq(cluster_link_publish(a, "t/a", "3", 1, 1, false, NULL, NULL, NULL), 0);
        ck_assert_int_eq(cluster_link_publish(a, "t/a", "4", 1, 1, false, NULL, NULL, NULL), 0);
        run_until(base, &sb.n_msgs, 7);
        ck_assert_str_eq(sb.payloads[4], "2");
        ck_assert_str_eq(sb.payloads[5], "3");
        ck_assert_str_eq(sb.payloads[6], "4");
        ck_assert_uint_eq(cluster_link_get_dups(b), 0);
        /* a copy of a real property (a redelivery, or a client replaying it): taken once */
        char m[64];
        snprintf(v, sizeof v, "%s", last_seq);
        snprintf(m, sizeof m, "%s", last_mac);
        forge(port, "t/a", "4", v, m);
        ck_assert_int_eq(cluster_link_publish(a, "t/a", "5", 1, 1, false, NULL, NULL, NULL), 0);
        run_until(base, &sb.n_msgs, 8);
        ck_assert_str_eq(sb.payloads[7], "5");
        ck_assert_uint_eq(cluster_link_get_dups(b), 1);
        cluster_link_free(a);
        cluster_link_free(b);
        event_base_free(base);
        broker_stop(pid);
        test_rmrf(dir);
        free(dir);
}
END_TEST

/* libmosquitto's own lines: the link gives it a log callback only while the daemon would
 * show a debug line (cluster_link_set_log_wanted). */
typedef struct loglines {
        bool want;
        int asked, failed, lib, lib_ca;
} loglines;

static void collect_log(int level, const char *msg, void *ud)
{
        loglines *g = ud;

        if (strstr(msg, "cannot connect to"))
                g->failed++;
        if (strstr(msg, "libmosquitto:")) {
                ck_assert_int_eq(level, HYB_LOG_DEBUG);
                g->lib++;
                if (strstr(msg, "Unable to load CA certificates"))
                        g->lib_ca++;
        }
}

static bool log_wanted(int level, void *ud)
{
        loglines *g = ud;

        g->asked++;
        return g->want && level == HYB_LOG_DEBUG;
}

START_TEST(test_lib_log)
{
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t sl = sizeof sa;
        char *dir = test_tmpdir(), ca[512], url[64];
        struct event_base *base = event_base_new();
        cluster_options o;
        cluster_link *l = NULL;
        loglines g = { 0 };
        hyb_error e;
        FILE *f;
        int fd;

        /* a listener that accepts the TCP connection (the probe, libmosquitto's connect);
         * the CA file is no certificate: libmosquitto says so in its own log line at each
         * connection attempt, before any TLS byte */
        fd = socket(AF_INET, SOCK_STREAM, 0);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
        ck_assert_int_eq(listen(fd, 16), 0);
        ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
        snprintf(url, sizeof url, "mqtts://127.0.0.1:%d", ntohs(sa.sin_port));
        snprintf(ca, sizeof ca, "%s/ca.pem", dir);
        f = fopen(ca, "w");
        ck_assert_ptr_nonnull(f);
        fputs("not a certificate\n", f);
        fclose(f);
        cluster_options_init(&o);
        o.broker = url;
        o.ca_file = ca;
        hyb_error_clear(&e);
        ck_assert_int_eq(cluster_link_new(base, &o, "hybrid-test-log", collect_log, &g, &l, &e), 0);
        cluster_link_set_log_wanted(l, log_wanted);
        ck_assert_int_ge(g.asked, 1);
        /* debug lines not wanted: the attempts fail, libmosquitto's line is not made */
        run_until(base, &g.failed, 2);
        ck_assert_int_eq(g.lib, 0);
        /* wanted: the next attempts bring it */
        g.want = true;
        run_until(base, &g.lib_ca, 1);
        ck_assert_int_ge(g.failed, 3);
        l = cluster_link_free(l);
        event_base_free(base);
        close(fd);
        test_rmrf(dir);
        free(dir);
}
END_TEST

START_TEST(test_bad_options)
{
        struct event_base *base = event_base_new();
        cluster_options o;
        cluster_link *l = NULL;
        hyb_error e;

        cluster_options_init(&o);
        hyb_error_clear(&e);
        o.broker = (char *)"tcp://h:1";
        ck_assert_int_eq(cluster_link_new(base, &o, NULL, NULL, NULL, &l, &e), -EINVAL);
        ck_assert_ptr_nonnull(strstr(e.message, "mqtt://"));
        o.broker = (char *)"mqtt://127.0.0.1:1";
        o.password_file = (char *)"/nonexistent/pass";
        hyb_error_clear(&e);
        ck_assert_int_eq(cluster_link_new(base, &o, NULL, NULL, NULL, &l, &e), -EINVAL);
        ck_assert_ptr_nonnull(strstr(e.message, "password_file"));
        /* the file's path and the system's reason; no parse offset (the errno once landed there) */
        ck_assert_ptr_nonnull(strstr(e.message, "/nonexistent/pass"));
        ck_assert_ptr_nonnull(strstr(e.message, strerror(ENOENT)));
        ck_assert_int_eq(e.offset, -1);
        ck_assert_ptr_null(l);
        event_base_free(base);
}
END_TEST

TCase *cluster_dedupe_tcase(void); /* test_dedupe.c */
TCase *cluster_map_tcase(void);    /* test_map.c */

Suite *cluster_suite(void)
{
        Suite *s = suite_create("cluster");
        TCase *tc = tcase_create("link");

        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_url);
        tcase_add_test(tc, test_bad_options);
        tcase_add_test(tc, test_pubsub);
        tcase_add_test(tc, test_lib_log);
        tcase_add_test(tc, test_seq_forged);
        suite_add_tcase(s, tc);
        suite_add_tcase(s, cluster_dedupe_tcase());
        suite_add_tcase(s, cluster_map_tcase());
        return s;
}
