/* SPDX-License-Identifier: MIT */
/*
 * hybrid-sample-service - a thermostat on the bus, written against the public API only.
 *
 *   hybrid-sample-service [--bus PATH] [--runner NAME] [--interval MS]
 *
 * Endpoint @localhost/org.example.thermo/<runner> (default runner "main") offers, from
 * one static method table (endpoint.h):
 *   getTemperature {"unit"?: string "C"|"F"}  -> {"celsius":..} or {"fahrenheit":..}
 *   setTarget      {"celsius": number}        -> {"target":..}     (any app)
 *   getStatus      (no arguments)             -> {"celsius","target","heating","events"}
 *   reset          (no arguments)             -> {}   only apps of the same owner ($owner)
 * and fires the bubble TEMP {"celsius":..,"target":..} every --interval ms (default 1000).
 * The argument policies are checked by the library before a handler runs (400 otherwise).
 * Prints the endpoint name once everything is registered; SIGTERM / SIGINT end it.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hybrid/bus.h>
#include <hybrid/endpoint.h>

#include "service.h"

typedef struct thermo {
        double celsius;
        double target;
        unsigned long events;
} thermo;

static int reply_json(hyb_bus_request *req, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int reply_json(hyb_bus_request *req, const char *fmt, ...)
{
        char buf[256];
        va_list ap;
        int n;

        va_start(ap, fmt);
        n = vsnprintf(buf, sizeof(buf), fmt, ap);
        va_end(ap);
        return hyb_bus_request_reply(req, 200, buf, (size_t)n, HYB_BODY_JSON);
}

/*
 * A tiny reader for one top-level key of a body the policy already checked; a real
 * service would use its JSON library here.  Returns a pointer to the value or NULL.
 */
static const char *find_key(const char *body, const char *key)
{
        char pat[64];
        const char *p;

        snprintf(pat, sizeof(pat), "\"%s\"", key);
        p = strstr(body, pat);
        if (!p)
                return NULL;
        p += strlen(pat);
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == ':')
                p++;
        return p;
}

static int on_get_temperature(hyb_bus_request *req, void *userdata)
{
        thermo *t = userdata;
        size_t len;
        const char *body = hyb_bus_request_get_body(req, &len);
        const char *unit = find_key(body, "unit");

        if (!unit || strncmp(unit, "\"C\"", 3) == 0)
                return reply_json(req, "{\"celsius\":%.1f}", t->celsius);
        if (strncmp(unit, "\"F\"", 3) == 0)
                return reply_json(req, "{\"fahrenheit\":%.1f}", t->celsius * 9 / 5 + 32);
        return hyb_bus_request_reply_error(req, 400, "unit must be \"C\" or \"F\"");
}

static int on_set_target(hyb_bus_request *req, void *userdata)
{
        thermo *t = userdata;
        size_t len;
        const char *v = find_key(hyb_bus_request_get_body(req, &len), "celsius");
        double c = v ? strtod(v, NULL) : 0;

        if (c < 5 || c > 35)
                return hyb_bus_request_reply_error(req, 400, "celsius must be from 5 to 35");
        t->target = c;
        return reply_json(req, "{\"target\":%.1f}", t->target);
}

static int on_get_status(hyb_bus_request *req, void *userdata)
{
        thermo *t = userdata;

        return reply_json(req, "{\"celsius\":%.1f,\"target\":%.1f,\"heating\":%s,\"events\":%lu}",
                          t->celsius, t->target, t->celsius < t->target ? "true" : "false",
                          t->events);
}

static int on_reset(hyb_bus_request *req, void *userdata)
{
        thermo *t = userdata;

        t->target = 20.0;
        return reply_json(req, "{}");
}

static const hyb_arg_policy get_temperature_args[] = {
        { "unit", HYB_JSON_STRING, 0 },
};
static const hyb_arg_policy set_target_args[] = {
        { "celsius", HYB_JSON_NUMBER, 1 },
};
static const hyb_method_def thermo_methods[] = {
        HYB_METHOD("getTemperature", on_get_temperature, get_temperature_args),
        HYB_METHOD("setTarget", on_set_target, set_target_args),
        HYB_METHOD_NOARGS("getStatus", on_get_status),
        { "reset", on_reset, NULL, 0, "$self", "$owner", 0 },
};

/* The room drifts towards the target by a tenth of a degree per tick; it runs until stopped. */
static int tick(hyb_bus *bus, void *userdata)
{
        thermo *t = userdata;
        char buf[128];
        int n;

        if (t->celsius < t->target - 0.05)
                t->celsius += 0.1;
        else if (t->celsius > t->target + 0.05)
                t->celsius -= 0.1;
        n = snprintf(buf, sizeof(buf), "{\"celsius\":%.1f,\"target\":%.1f}", t->celsius,
                     t->target);
        /* One-way: no round trip; the broker fans out to whoever subscribed. */
        if (hyb_bus_fire(bus, "TEMP", buf, (size_t)n, HYB_BODY_JSON, NULL, NULL) >= 0)
                t->events++;
        return SERVICE_CONTINUE;
}

static int usage(void)
{
        fprintf(stderr, "usage: hybrid-sample-service [--bus PATH] [--runner NAME] [--interval MS]\n");
        return 2;
}

int main(int argc, char **argv)
{
        const char *path = getenv("HYBRID_BUS"), *runner = "main";
        thermo t = { .celsius = 19.0, .target = 21.0 };
        hyb_bus *bus = NULL;
        hyb_slot *methods = NULL, *bubble = NULL;
        hyb_error e;
        long interval = 1000;
        uint64_t period;
        int sfd, r, status = 0;

        for (int i = 1; i < argc; i++) {
                if (i + 1 < argc && strcmp(argv[i], "--bus") == 0)
                        path = argv[++i];
                else if (i + 1 < argc && strcmp(argv[i], "--runner") == 0)
                        runner = argv[++i];
                else if (i + 1 < argc && strcmp(argv[i], "--interval") == 0)
                        interval = strtol(argv[++i], NULL, 10);
                else
                        return usage();
        }
        if (interval < 10)
                return usage();
        if (path && !*path)
                path = NULL;

        /* SIGTERM / SIGINT are read from a signalfd next to the bus socket. */
        sfd = service_signals();
        if (sfd < 0)
                return 1;
        if (service_connect("hybrid-sample-service", path, "org.example.thermo", runner, &bus) < 0)
                return 3;
        hyb_error_clear(&e);
        r = hyb_endpoint_register_table(bus, thermo_methods, sizeof(thermo_methods[0]),
                                   sizeof(thermo_methods) / sizeof(thermo_methods[0]), &t,
                                   &methods, &e);
        if (r >= 0)
                r = hyb_bus_register_event(bus, "TEMP", NULL, NULL, &bubble, &e);
        if (r < 0) {
                service_report("hybrid-sample-service", "register", r, &e);
                status = 1;
                goto out;
        }
        printf("%s\n", hyb_bus_get_endpoint_name(bus));
        fflush(stdout);

        period = (uint64_t)interval * 1000u;
        status = service_run("hybrid-sample-service", bus, sfd, hyb_now_usec() + period, period,
                             tick, &t);
out:
        hyb_slot_unref(bubble);
        hyb_slot_unref(methods);
        hyb_bus_unref(bus);
        close(sfd);
        return status;
}
