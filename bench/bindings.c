/* SPDX-License-Identifier: MIT */
/*
 * bench/bindings.c - the C side of bench/run-bindings.sh (bench/README.md, "bench-bindings"):
 * the echo services every client calls, and the C client the bindings are measured against.
 *
 *   bench-bindings serve SOCKET              hybrid: `echo` (the params back) and `burst`
 *                                            {n: int} (fires TICK n times, then answers)
 *   bench-bindings dbus-serve ADDRESS        D-Bus (sd-bus): org.libhybrid.BenchEcho.Echo(s)->s
 *   bench-bindings mqtt-serve HOST PORT      MQTT (libmosquitto): bench/req/<id> -> bench/resp/<id>
 *   bench-bindings client SOCKET ENDPOINT CALLS EVENTS
 *                                            C's figures, as the Python and Node clients print them
 *
 * Every service is C, so each row measures the client's language and its transport, not the
 * service.  Servers print READY on stdout once serving and stop on SIGTERM.  The client prints
 * `RESULT call_p50_us=X` (median of CALLS sync calls of echo with {"words":"hi"}, after a 10 %
 * warm-up) and `RESULT events_per_s=X` (EVENTS events of one burst, first to last delivery).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hybrid/bus.h>
#include <hybrid/endpoint.h>

#ifdef HAVE_SDBUS
#include <systemd/sd-bus.h>
#endif
#ifdef HAVE_MOSQUITTO
#include <mosquitto.h>
#endif

#include "bench-util.h"

#define ECHO_BODY "{\"words\":\"hi\"}"

static volatile sig_atomic_t stopping;
static void on_term(int sig)
{
        (void)sig;
        stopping = 1;
}

static void ready(void)
{
        signal(SIGTERM, on_term);
        signal(SIGINT, on_term);
        printf("READY\n");
        fflush(stdout);
}

static hyb_bus *connect_or_die(const char *sock, const char *app)
{
        hyb_bus *bus = NULL;
        hyb_error err = { 0 };
        char runner[32];

        snprintf(runner, sizeof runner, "p%ld", (long)getpid());
        if (hyb_bus_connect(sock, app, runner, &bus, &err) < 0) {
                fprintf(stderr, "bench-bindings: connect %s: %s\n", sock, err.message);
                exit(1);
        }
        return bus;
}

/* ------------------------------------------------------------------ hybrid service */

static int on_echo(hyb_bus_request *req, void *userdata)
{
        (void)userdata;
        size_t len = 0;
        const void *body = hyb_bus_request_get_body(req, &len);
        return hyb_bus_request_reply(req, 200, body, len, 0);
}

static int on_burst(hyb_bus_request *req, void *userdata)
{
        hyb_bus *bus = userdata;
        size_t len = 0;
        const char *body = hyb_bus_request_get_body(req, &len);
        const char *p = strstr(body, "\"n\"");
        long n = p ? strtol(p + 4 + strspn(p + 4, " :"), NULL, 10) : 0;
        char out[64];
        int r;

        for (long i = 0; i < n; i++) {
                int m = snprintf(out, sizeof out, "{\"i\":%ld}", i);
                if ((r = hyb_bus_fire(bus, "TICK", out, (size_t)m, 0, NULL, NULL)) < 0)
                        return hyb_bus_request_reply_error(req, 500, hyb_strerror(r));
                if (i % 64 == 63 && (r = hyb_bus_flush(bus)) < 0)
                        return hyb_bus_request_reply_error(req, 500, hyb_strerror(r));
        }
        int m = snprintf(out, sizeof out, "{\"fired\":%ld}", n);
        return hyb_bus_request_reply(req, 200, out, (size_t)m, 0);
}

static int cmd_serve(const char *sock)
{
        static const hyb_arg_policy burst_args[] = { { "n", HYB_JSON_INTEGER, 1 } };
        hyb_bus *bus = connect_or_die(sock, "org.example.bench.echo");
        hyb_error err = { 0 };
        int r;

        if (hyb_endpoint_register_method(bus, "echo", NULL, 0, NULL, NULL, 0, on_echo, NULL, NULL,
                                         &err) < 0 ||
            hyb_endpoint_register_method(bus, "burst", burst_args, 1, NULL, NULL, 0, on_burst, bus,
                                         NULL, &err) < 0 ||
            hyb_bus_register_event(bus, "TICK", NULL, NULL, NULL, &err) < 0) {
                fprintf(stderr, "bench-bindings: register: %s\n", err.message);
                return 1;
        }
        fprintf(stderr, "%s\n", hyb_bus_get_endpoint_name(bus));
        ready();
        while (!stopping) {
                while ((r = hyb_bus_process(bus)) > 0)
                        ;
                if (r == 0)
                        r = hyb_bus_wait(bus, 200000);
                if (r < 0 && r != -EINTR)
                        break;
        }
        hyb_bus_unref(bus);
        return 0;
}

/* ------------------------------------------------------------------ D-Bus service */

#ifdef HAVE_SDBUS
static int dbus_echo(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
        (void)userdata;
        (void)error;
        const char *s;
        int r = sd_bus_message_read(m, "s", &s);
        return r < 0 ? r : sd_bus_reply_method_return(m, "s", s);
}

static const sd_bus_vtable dbus_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD("Echo", "s", "s", dbus_echo, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END
};

static int cmd_dbus_serve(const char *address)
{
        sd_bus *bus = NULL;
        int r;

        if ((r = sd_bus_new(&bus)) < 0 || (r = sd_bus_set_address(bus, address)) < 0 ||
            (r = sd_bus_set_bus_client(bus, 1)) < 0 || (r = sd_bus_start(bus)) < 0 ||
            (r = sd_bus_add_object_vtable(bus, NULL, "/org/libhybrid/BenchEcho",
                                          "org.libhybrid.BenchEcho", dbus_vtable, NULL)) < 0 ||
            (r = sd_bus_request_name(bus, "org.libhybrid.BenchEcho", 0)) < 0) {
                fprintf(stderr, "bench-bindings: dbus %s: %s\n", address, strerror(-r));
                return 1;
        }
        ready();
        while (!stopping) {
                r = sd_bus_process(bus, NULL);
                if (r < 0)
                        break;
                if (r == 0 && sd_bus_wait(bus, 200000) < 0 && !stopping)
                        break;
        }
        sd_bus_flush_close_unref(bus);
        return 0;
}
#endif

/* ------------------------------------------------------------------ MQTT service */

#ifdef HAVE_MOSQUITTO
static void mqtt_on_message(struct mosquitto *m, void *ud, const struct mosquitto_message *msg)
{
        (void)ud;
        char topic[256];
        /* bench/req/<id> -> bench/resp/<id> */
        snprintf(topic, sizeof topic, "bench/resp/%s", msg->topic + strlen("bench/req/"));
        mosquitto_publish(m, NULL, topic, msg->payloadlen, msg->payload, 0, false);
}

static int cmd_mqtt_serve(const char *host, int port)
{
        struct mosquitto *m;
        int rc;

        mosquitto_lib_init();
        if (!(m = mosquitto_new("bench-bindings-echo", true, NULL))) {
                perror("mosquitto_new");
                return 1;
        }
        mosquitto_message_callback_set(m, mqtt_on_message);
        if ((rc = mosquitto_connect(m, host, port, 600)) != MOSQ_ERR_SUCCESS ||
            (rc = mosquitto_subscribe(m, NULL, "bench/req/#", 0)) != MOSQ_ERR_SUCCESS) {
                fprintf(stderr, "bench-bindings: mqtt %s:%d: %s\n", host, port, mosquitto_strerror(rc));
                return 1;
        }
        /* the SUBACK: our subscription is in place before READY */
        for (int i = 0; i < 20; i++)
                mosquitto_loop(m, 50, 1);
        ready();
        while (!stopping) {
                rc = mosquitto_loop(m, 200, 1);
                if (rc != MOSQ_ERR_SUCCESS && !stopping) {
                        fprintf(stderr, "bench-bindings: mqtt loop: %s\n", mosquitto_strerror(rc));
                        break;
                }
        }
        mosquitto_destroy(m);
        mosquitto_lib_cleanup();
        return 0;
}
#endif

/* ------------------------------------------------------------------ the C client */

typedef struct events {
        long want, got;
        uint64_t first_ns, last_ns;
} events;

static void on_tick(hyb_bus *bus, const hyb_bus_event *ev, void *userdata)
{
        (void)bus;
        (void)ev;
        events *e = userdata;
        uint64_t now = bench_now_ns();
        if (e->got++ == 0)
                e->first_ns = now;
        e->last_ns = now;
}

/* direct: false turns the library's direct channels off (every call through hybridd);
 * n_events 0: the call figure alone */
static int cmd_client(const char *sock, const char *endpoint, long calls, long n_events, bool direct)
{
        hyb_bus *bus = connect_or_die(sock, "org.example.bench.c");
        hyb_error err = { 0 };
        long warm = calls / 10;
        double *us = calloc((size_t)calls, sizeof *us);
        events ev = { .want = n_events };
        char body[64];
        int r;

        if (!us)
                return 1;
        if (!direct)
                hyb_bus_set_direct(bus, false);
        for (long i = -warm; i < calls; i++) {
                hyb_bus_reply *reply = NULL;
                uint64_t t0 = bench_now_ns();
                r = hyb_bus_call(bus, endpoint, "echo", ECHO_BODY, strlen(ECHO_BODY), 0, 0, &reply,
                                 &err);
                uint64_t t1 = bench_now_ns();
                size_t len = 0;
                const char *b = r < 0 ? NULL : hyb_bus_reply_get_body(reply, &len);
                if (r < 0 || len != strlen(ECHO_BODY) || memcmp(b, ECHO_BODY, len) != 0) {
                        fprintf(stderr, "bench-bindings: echo: %s\n", r < 0 ? err.message : "wrong body");
                        return 1;
                }
                hyb_bus_reply_unref(reply);
                if (i >= 0)
                        us[i] = (double)(t1 - t0) / 1e3;
        }
        printf("RESULT call_p50_us=%.2f\n", bench_median(us, (size_t)calls));
        free(us);
        if (n_events <= 0) {
                hyb_bus_unref(bus);
                return 0;
        }

        if (hyb_bus_subscribe(bus, endpoint, "TICK", on_tick, &ev, NULL, &err) < 0) {
                fprintf(stderr, "bench-bindings: subscribe: %s\n", err.message);
                return 1;
        }
        int m = snprintf(body, sizeof body, "{\"n\":%ld}", n_events);
        if (hyb_bus_call(bus, endpoint, "burst", body, (size_t)m, 0, 60000, NULL, &err) < 0) {
                fprintf(stderr, "bench-bindings: burst: %s\n", err.message);
                return 1;
        }
        uint64_t deadline = bench_now_ns() + 60 * UINT64_C(1000000000);
        while (ev.got < ev.want && bench_now_ns() < deadline) {
                while ((r = hyb_bus_process(bus)) > 0)
                        ;
                if (r < 0 || ev.got >= ev.want)
                        break;
                hyb_bus_wait(bus, 100000);
        }
        if (ev.got < ev.want) {
                fprintf(stderr, "bench-bindings: %ld of %ld events\n", ev.got, ev.want);
                return 1;
        }
        printf("RESULT events_per_s=%.0f\n",
               (double)(ev.got - 1) / ((double)(ev.last_ns - ev.first_ns) / 1e9));
        hyb_bus_unref(bus);
        return 0;
}

int main(int argc, char **argv)
{
        if (argc == 3 && strcmp(argv[1], "serve") == 0)
                return cmd_serve(argv[2]);
#ifdef HAVE_SDBUS
        if (argc == 3 && strcmp(argv[1], "dbus-serve") == 0)
                return cmd_dbus_serve(argv[2]);
#endif
#ifdef HAVE_MOSQUITTO
        if (argc == 4 && strcmp(argv[1], "mqtt-serve") == 0)
                return cmd_mqtt_serve(argv[2], atoi(argv[3]));
#endif
        if ((argc == 6 || (argc == 7 && strcmp(argv[6], "--no-direct") == 0)) &&
            strcmp(argv[1], "client") == 0)
                return cmd_client(argv[2], argv[3], atol(argv[4]), atol(argv[5]), argc == 6);
        fprintf(stderr, "usage: bench-bindings serve SOCKET | dbus-serve ADDRESS | mqtt-serve HOST PORT |\n"
                        "       client SOCKET ENDPOINT CALLS EVENTS [--no-direct]\n"
                        "(dbus-serve and mqtt-serve need a build with libsystemd / libmosquitto)\n");
        return 2;
}
