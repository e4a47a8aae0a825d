/* SPDX-License-Identifier: MIT */
/*
 * bench-xhost: the round trip of a bus call between two hosts of a cluster
 * (doc/cluster.md "Bus calls between hosts") beside a local call and beside mosquitto's own
 * request/response between two plain libmosquitto clients (MQTT 5 response topic and
 * correlation data, QoS 1 as the daemons use), in the same run, through the same broker.
 *
 *   mosquitto (free loopback port) <- hybridd host "a" (the procedure) and host "b"
 *   local:  a client of a calls @localhost/.../srv echo             (one Unix socket hop)
 *   xhost:  a client of b calls @a/.../srv echo                     (b -> MQTT -> a -> MQTT -> b)
 *   mqtt:   requester -> bench/req -> responder -> response topic -> requester
 *
 * Each row: --calls sequential calls after a warm-up; p50 and p99 in microseconds; ratio =
 * xhost / mqtt (target p50 <= 2).  Processes are started here and stopped by PID.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#include <hybrid/hybrid.h>
#include <mosquitto.h>
#include <mqtt_protocol.h>

#include "bench-util.h"

static int n_calls = 2000;
static const char *hybridd = "build-bench/examples/hybridd/hybridd";
static const char *mosquitto_bin = "/usr/sbin/mosquitto";
static char dir[256];
static pid_t pids[3];
static int n_pids;

static void die(const char *what)
{
        fprintf(stderr, "bench-xhost: %s\n", what);
        for (int i = 0; i < n_pids; i++)
                kill(pids[i], SIGTERM);
        exit(1);
}

static int free_port(void)
{
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t len = sizeof a;
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || getsockname(fd, (struct sockaddr *)&a, &len) < 0)
                die("no free port");
        close(fd);
        return ntohs(a.sin_port);
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

static void spawn(char *const argv[], const char *log)
{
        pid_t p = fork();
        if (p < 0)
                die("fork");
        if (p == 0) {
                if (!freopen(log, "w", stdout) || !freopen(log, "a", stderr))
                        _exit(127);
                execv(argv[0], argv);
                _exit(127);
        }
        pids[n_pids++] = p;
}

static void write_file(const char *path, const char *text)
{
        FILE *f = fopen(path, "w");
        if (!f || fputs(text, f) < 0 || fclose(f) != 0)
                die("cannot write a config file");
}

static void start_host(const char *host, int port, char *sock, size_t size)
{
        char yaml[512], conf[300], log[300];
        snprintf(yaml, sizeof yaml, "host: %s\ncluster:\n  broker: mqtt://127.0.0.1:%d\nlog:\n  level: warning\n",
                 host, port);
        snprintf(conf, sizeof conf, "%s/%s.yaml", dir, host);
        snprintf(log, sizeof log, "%s/%s.log", dir, host);
        snprintf(sock, size, "%s/%s.sock", dir, host);
        write_file(conf, yaml);
        char *argv[] = { (char *)hybridd, "--foreground", "--socket", sock, "--config", conf, NULL };
        spawn(argv, log);
        for (int i = 0; i < 1000; i++) {
                if (access(sock, F_OK) == 0)
                        return;
                usleep(10000);
        }
        die("a hybridd did not start (see its log)");
}

/* ---------------------------------------------------------------- bus rows */

static int m_echo(hyb_bus_request *req, void *ud)
{
        size_t len;
        const void *body = hyb_bus_request_get_body(req, &len);
        return hyb_bus_request_reply(req, 200, body, len, 0);
}

static volatile bool svc_stop;

static void *svc_main(void *ud)
{
        hyb_bus *bus = ud;
        while (!svc_stop) {
                int r = hyb_bus_process(bus);
                if (r < 0)
                        break;
                if (r == 0)
                        hyb_bus_wait(bus, 20000);
        }
        return NULL;
}

/* n sequential calls: their round trips (us) into v; the failures counted. */
static int time_calls(hyb_bus *bus, const char *ep, double *v, int n)
{
        static const char body[] = "{\"t\":21.5}";
        hyb_error e;
        int failed = 0;
        for (int i = 0; i < n; i++) {
                uint64_t t0 = bench_now_ns();
                int r = hyb_bus_call(bus, ep, "echo", body, sizeof body - 1, 0, 10000, NULL, &e);
                v[i] = (double)(bench_now_ns() - t0) / 1000.0;
                failed += r != 0;
        }
        return failed;
}

/* ---------------------------------------------------------------- mosquitto rows */

typedef struct mq {
        pthread_mutex_t lock;
        pthread_cond_t cond;
        bool connected, subscribed;
        uint64_t got; /* the last correlation id answered */
} mq;

static void mq_connect(struct mosquitto *m, void *ud, int rc, int flags, const mosquitto_property *p)
{
        mq *q = ud;
        pthread_mutex_lock(&q->lock);
        q->connected = rc == 0;
        pthread_cond_broadcast(&q->cond);
        pthread_mutex_unlock(&q->lock);
}

static void mq_subscribe(struct mosquitto *m, void *ud, int mid, int n, const int *granted,
                         const mosquitto_property *p)
{
        mq *q = ud;
        pthread_mutex_lock(&q->lock);
        q->subscribed = true;
        pthread_cond_broadcast(&q->cond);
        pthread_mutex_unlock(&q->lock);
}

/* The responder: publishes the request's payload to its response topic, with its
 * correlation data, as a procedure answers. */
static void responder_msg(struct mosquitto *m, void *ud, const struct mosquitto_message *msg,
                          const mosquitto_property *props)
{
        char *rt = NULL;
        void *corr = NULL;
        uint16_t cl = 0;
        mosquitto_property *out = NULL;
        mosquitto_property_read_string(props, MQTT_PROP_RESPONSE_TOPIC, &rt, false);
        mosquitto_property_read_binary(props, MQTT_PROP_CORRELATION_DATA, &corr, &cl, false);
        if (rt) {
                if (corr)
                        mosquitto_property_add_binary(&out, MQTT_PROP_CORRELATION_DATA, corr, cl);
                mosquitto_publish_v5(m, NULL, rt, msg->payloadlen, msg->payload, 1, false, out);
        }
        mosquitto_property_free_all(&out);
        free(rt);
        free(corr);
}

static void requester_msg(struct mosquitto *m, void *ud, const struct mosquitto_message *msg,
                          const mosquitto_property *props)
{
        mq *q = ud;
        void *corr = NULL;
        uint16_t cl = 0;
        uint64_t id = 0;
        mosquitto_property_read_binary(props, MQTT_PROP_CORRELATION_DATA, &corr, &cl, false);
        if (corr && cl == sizeof id)
                memcpy(&id, corr, sizeof id);
        free(corr);
        pthread_mutex_lock(&q->lock);
        q->got = id;
        pthread_cond_broadcast(&q->cond);
        pthread_mutex_unlock(&q->lock);
}

static struct mosquitto *mq_client(const char *id, int port, mq *q, const char *sub,
                                   void (*on_msg)(struct mosquitto *, void *, const struct mosquitto_message *,
                                                  const mosquitto_property *))
{
        struct mosquitto *m = mosquitto_new(id, true, q);
        if (!m)
                die("mosquitto_new");
        mosquitto_int_option(m, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
        mosquitto_int_option(m, MOSQ_OPT_TCP_NODELAY, 1);
        mosquitto_connect_v5_callback_set(m, mq_connect);
        mosquitto_subscribe_v5_callback_set(m, mq_subscribe);
        mosquitto_message_v5_callback_set(m, on_msg);
        if (mosquitto_connect_bind_v5(m, "127.0.0.1", port, 30, NULL, NULL) != MOSQ_ERR_SUCCESS ||
            mosquitto_loop_start(m) != MOSQ_ERR_SUCCESS)
                die("mosquitto connect");
        pthread_mutex_lock(&q->lock);
        while (!q->connected)
                pthread_cond_wait(&q->cond, &q->lock);
        pthread_mutex_unlock(&q->lock);
        mosquitto_subscribe_v5(m, NULL, sub, 1, 0, NULL);
        pthread_mutex_lock(&q->lock);
        while (!q->subscribed)
                pthread_cond_wait(&q->cond, &q->lock);
        pthread_mutex_unlock(&q->lock);
        return m;
}

static void time_mqtt(int port, double *v, int n, int warm)
{
        static const char body[] = "{\"t\":21.5}";
        mq rq = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER }, rs = rq;
        struct mosquitto *resp = mq_client("bench-responder", port, &rs, "bench/req", responder_msg);
        struct mosquitto *req = mq_client("bench-requester", port, &rq, "bench/resp/requester", requester_msg);
        for (int i = 0; i < warm + n; i++) {
                uint64_t id = (uint64_t)i + 1;
                mosquitto_property *p = NULL;
                mosquitto_property_add_string(&p, MQTT_PROP_RESPONSE_TOPIC, "bench/resp/requester");
                mosquitto_property_add_binary(&p, MQTT_PROP_CORRELATION_DATA, &id, sizeof id);
                uint64_t t0 = bench_now_ns();
                mosquitto_publish_v5(req, NULL, "bench/req", sizeof body - 1, body, 1, false, p);
                pthread_mutex_lock(&rq.lock);
                while (rq.got != id)
                        pthread_cond_wait(&rq.cond, &rq.lock);
                pthread_mutex_unlock(&rq.lock);
                if (i >= warm)
                        v[i - warm] = (double)(bench_now_ns() - t0) / 1000.0;
                mosquitto_property_free_all(&p);
        }
        mosquitto_disconnect(req);
        mosquitto_disconnect(resp);
        mosquitto_loop_stop(req, false);
        mosquitto_loop_stop(resp, false);
        mosquitto_destroy(req);
        mosquitto_destroy(resp);
}

/* ---------------------------------------------------------------- main */

static void row(const char *name, double *v, int n, double ref_p50)
{
        double p50 = bench_percentile(v, (size_t)n, 50), p99 = bench_percentile(v, (size_t)n, 99);
        if (ref_p50 > 0)
                printf("%-34s %10.1f %10.1f %8.2f\n", name, p50, p99, p50 / ref_p50);
        else
                printf("%-34s %10.1f %10.1f %8s\n", name, p50, p99, "");
}

int main(int argc, char **argv)
{
        for (int i = 1; i < argc; i++) {
                if (!strcmp(argv[i], "--calls") && i + 1 < argc)
                        n_calls = atoi(argv[++i]);
                else if (!strcmp(argv[i], "--hybridd") && i + 1 < argc)
                        hybridd = argv[++i];
                else if (!strcmp(argv[i], "--mosquitto") && i + 1 < argc)
                        mosquitto_bin = argv[++i];
                else {
                        fprintf(stderr, "usage: bench-xhost [--calls N] [--hybridd PATH] [--mosquitto PATH]\n");
                        return 2;
                }
        }
        if (n_calls < 10)
                n_calls = 10;
        snprintf(dir, sizeof dir, "%s/bench-xhost.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
        if (!mkdtemp(dir))
                die("mkdtemp");
        mosquitto_lib_init();

        int port = free_port();
        char conf[300], log[300], text[512], sa[300], sb[300];
        snprintf(conf, sizeof conf, "%s/mosquitto.conf", dir);
        snprintf(log, sizeof log, "%s/mosquitto.log", dir);
        /* set_tcp_nodelay: without it the broker holds small packets back (Nagle), ~40 ms a hop */
        snprintf(text, sizeof text, "listener %d 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\n%s", port,
                 geteuid() == 0 ? "user root\n" : "");
        write_file(conf, text);
        char *margv[] = { (char *)mosquitto_bin, "-c", conf, NULL };
        spawn(margv, log);
        for (int i = 0; i < 1000 && !port_open(port); i++)
                usleep(10000);
        if (!port_open(port))
                die("mosquitto did not start");
        start_host("a", port, sa, sizeof sa);
        start_host("b", port, sb, sizeof sb);

        hyb_bus *srv = NULL, *ca = NULL, *cb = NULL;
        hyb_error e;
        if (hyb_bus_connect(sa, "org.bench.xhost", "srv", &srv, &e) < 0 ||
            hyb_bus_register_procedure(srv, "echo", NULL, NULL, m_echo, NULL, NULL, &e) < 0 ||
            hyb_bus_connect(sa, "org.bench.xhost", "local", &ca, &e) < 0 ||
            hyb_bus_connect(sb, "org.bench.xhost", "remote", &cb, &e) < 0)
                die(e.message);
        pthread_t th;
        pthread_create(&th, NULL, svc_main, srv);

        int warm = n_calls / 10;
        double *v = calloc((size_t)(warm > n_calls ? warm : n_calls), sizeof *v);
        double *local = calloc((size_t)n_calls, sizeof *v), *xh = calloc((size_t)n_calls, sizeof *v),
               *mqtt = calloc((size_t)n_calls, sizeof *v);
        if (!v || !local || !xh || !mqtt)
                die("out of memory");
        /* the first cross-host call may wait for a's subscription: retry until one answers */
        for (int i = 0; i < 500 && time_calls(cb, "@a/org.bench.xhost/srv", v, 1); i++)
                usleep(10000);
        time_calls(ca, "@localhost/org.bench.xhost/srv", v, warm);
        int fl = time_calls(ca, "@localhost/org.bench.xhost/srv", local, n_calls);
        time_calls(cb, "@a/org.bench.xhost/srv", v, warm);
        int fx = time_calls(cb, "@a/org.bench.xhost/srv", xh, n_calls);
        time_mqtt(port, mqtt, n_calls, warm);

        printf("bench-xhost: %d sequential calls per row, QoS 1, one mosquitto on loopback\n", n_calls);
        printf("%-34s %10s %10s %8s\n", "row", "p50 us", "p99 us", "ratio");
        double mp50 = bench_percentile(mqtt, (size_t)n_calls, 50);
        row("mqtt request/response (2 clients)", mqtt, n_calls, 0);
        row("local call (one hybridd)", local, n_calls, 0);
        row("cross-host call b -> a", xh, n_calls, mp50);
        printf("ratio: cross-host p50 / mqtt request/response p50 (target <= 2)\n");
        if (fl || fx)
                printf("failed calls: local %d, cross-host %d\n", fl, fx);

        svc_stop = true;
        hyb_bus_unref(ca);
        hyb_bus_unref(cb);
        pthread_join(th, NULL);
        hyb_bus_unref(srv);
        for (int i = n_pids - 1; i >= 0; i--) {
                kill(pids[i], SIGTERM);
                waitpid(pids[i], NULL, 0);
        }
        mosquitto_lib_cleanup();
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0)
                fprintf(stderr, "bench-xhost: could not remove %s\n", dir);
        free(v);
        free(local);
        free(xh);
        free(mqtt);
        return fl || fx ? 1 : 0;
}
