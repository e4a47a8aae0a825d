/* SPDX-License-Identifier: MIT */
/*
 * hyb_log: a record for hybrid-logd as an asynchronous call, the same line on stderr
 * when no logd takes it (include/hybrid/log.h).
 *
 * The call floats on the bus with a `pending` record as its userdata: the reply
 * callback marks it answered (and writes the line to stderr on an error status), the
 * slot's destroy callback frees it, writing the line first if no answer ever came (the
 * bus was freed with the call pending).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "hybrid/log.h"
#include "bus-internal.h"
#include "common/util.h"

#define LOGD_ENDPOINT "@localhost/org.hybridos.logd/main"
#define LOG_CALL_TIMEOUT_MS 5000 /* the broker answers 504 past it: then stderr */
#define LOG_MESSAGE_MAX 65536

typedef struct pending {
        bool answered;
        size_t len;
        char line[]; /* the stderr line, '\n' included */
} pending;

static const char *level_name(int level)
{
        static const char *const names[8] = { NULL, NULL, NULL, "error", "warning", "notice",
                                              "info", "debug" };

        return level >= 3 && level <= 7 ? names[level] : NULL;
}

/*
 * The message on one line, as `hybrid log` prints it: control characters as \n, \r, \t
 * or \xNN (a newline in a message would otherwise start what reads as another record).
 * Returns a malloc'd string, or NULL.
 */
static char *one_line(const char *m)
{
        size_t n = 0;
        char *out, *o;

        for (const char *c = m; *c; c++)
                n += (unsigned char)*c < 0x20 || *c == 0x7f ? 4 : 1;
        out = o = malloc(n + 1);
        if (!out)
                return NULL;
        for (; *m; m++) {
                unsigned char c = (unsigned char)*m;

                if (c == '\n' || c == '\r' || c == '\t') {
                        *o++ = '\\';
                        *o++ = c == '\n' ? 'n' : c == '\r' ? 'r' : 't';
                } else if (c < 0x20 || c == 0x7f) {
                        snprintf(o, 5, "\\x%02x", c);
                        o += 4;
                } else
                        *o++ = (char)c;
        }
        *o = '\0';
        return out;
}

/* The stderr line: "<time> <level> <@host/app/runner> <message>\n". */
static pending *line_new(const hyb_bus *bus, int level, const char *message)
{
        extern char *program_invocation_short_name;
        char when[48], who[160], *msg;
        struct timespec ts;
        struct tm tm;
        pending *p;
        int n;

        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
        if (bus && hyb_bus_get_endpoint_name(bus))
                snprintf(who, sizeof who, "%s", hyb_bus_get_endpoint_name(bus));
        else
                snprintf(who, sizeof who, "@localhost/%s/p%ld", program_invocation_short_name,
                         (long)getpid());
        msg = one_line(message);
        if (!msg)
                return NULL;
        n = snprintf(NULL, 0, "%s.%03ldZ %s %s %s\n", when, ts.tv_nsec / 1000000,
                     level_name(level), who, msg);
        if (n < 0 || !(p = malloc(sizeof *p + (size_t)n + 1))) {
                free(msg);
                return NULL;
        }
        snprintf(p->line, (size_t)n + 1, "%s.%03ldZ %s %s %s\n", when, ts.tv_nsec / 1000000,
                 level_name(level), who, msg);
        free(msg);
        p->len = (size_t)n;
        p->answered = false;
        return p;
}

/* One write(2), so that lines of several threads or processes do not interleave. */
static void line_write(const pending *p)
{
        size_t off = 0;

        while (off < p->len) {
                ssize_t k = write(STDERR_FILENO, p->line + off, p->len - off);

                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        return;
                off += (size_t)k;
        }
}

static void on_reply(hyb_bus *bus, const hyb_bus_reply *reply, void *userdata)
{
        pending *p = userdata;

        p->answered = true;
        if (hyb_bus_reply_get_status(reply) / 100 != 2)
                line_write(p); /* no logd (404), it refused (4xx), it is stuck (504)... */
}

static void on_destroy(void *userdata)
{
        pending *p = userdata;

        if (!p->answered)
                line_write(p);
        free(p);
}

HYB_EXPORT int hyb_log_send(hyb_bus *bus, hyb_log_level level, const char *fields_json,
                            const char *message)
{
        json_t *body, *fields = NULL;
        hyb_slot *slot = NULL;
        pending *p;
        char *text;
        int r;

        hyb_assert_return(message && level_name((int)level), -EINVAL);
        if (fields_json) {
                fields = json_loads(fields_json, 0, NULL);
                if (!json_is_object(fields)) {
                        json_decref(fields);
                        return HYB_E_PARSE;
                }
        }
        p = line_new(bus, (int)level, message);
        if (!p) {
                json_decref(fields);
                return -ENOMEM;
        }
        if (!bus || !hyb_bus_is_open(bus)) {
                json_decref(fields);
                line_write(p);
                free(p);
                return 1;
        }
        body = json_pack("{s:s, s:s}", "level", level_name((int)level), "message", message);
        if (body && fields)
                json_object_set_new(body, "fields", fields);
        else
                json_decref(fields);
        text = body ? json_dumps(body, JSON_COMPACT) : NULL;
        json_decref(body);
        if (!text) {
                /* not UTF-8, or out of memory: the line still gets out */
                line_write(p);
                free(p);
                return -ENOMEM;
        }
        r = hyb_bus_call_async(bus, LOGD_ENDPOINT, "log", text, strlen(text), HYB_BODY_JSON,
                               LOG_CALL_TIMEOUT_MS, on_reply, p, &slot);
        free(text);
        if (r < 0) {
                if (r == HYB_E_CLOSED) {
                        line_write(p);
                        free(p);
                        return 1;
                }
                free(p);
                return r;
        }
        /* From here the slot owns p: the bus keeps the call until its answer. */
        hyb_slot_set_destroy_callback(slot, on_destroy);
        hyb_slot_set_floating(slot, true);
        hyb_slot_unref(slot);
        return 0;
}

HYB_EXPORT int hyb_log(hyb_bus *bus, hyb_log_level level, const char *fmt, ...)
{
        char *msg;
        va_list ap;
        int n, r;

        hyb_assert_return(fmt, -EINVAL);
        va_start(ap, fmt);
        n = vsnprintf(NULL, 0, fmt, ap);
        va_end(ap);
        if (n < 0)
                return -EINVAL;
        if (n > LOG_MESSAGE_MAX)
                n = LOG_MESSAGE_MAX;
        msg = malloc((size_t)n + 1);
        if (!msg)
                return -ENOMEM;
        va_start(ap, fmt);
        vsnprintf(msg, (size_t)n + 1, fmt, ap);
        va_end(ap);
        r = hyb_log_send(bus, level, NULL, msg);
        free(msg);
        return r;
}
