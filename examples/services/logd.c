/* SPDX-License-Identifier: MIT */
/*
 * hybrid-logd - the logging service of the bus (doc/hybrid-logd.md).
 *
 *   hybrid-logd [--bus PATH] [--max-records N] [--max-bytes B]
 *
 * Endpoint @localhost/org.hybridos.logd/main offers
 *   log   {"level"?: string, "message": string, "fields"?: object}  -> {"seq": N}
 *   query {"app"?: glob, "level"?: string, "since"?: µs, "after"?: seq, "limit"?: n}
 *         -> {"records": [...], "next": seq | null}
 *   stats {} -> {"records","bytes","apps","uids"}
 * and fires the bubble Record (one record per event) for followers.  A record is
 *   {"seq","time" (µs since the epoch),"host","app","runner","level","message","fields"?}
 * whose host, app and runner are the caller's endpoint as the broker verified it.
 *
 * The ring, oldest first:
 *
 *   head                                                    tail
 *    [seq 4 app A] <-> [seq 5 app B] <-> [seq 6 app A] <-> [seq 7 app A]
 *         \______________________________/______________/   per-app chain (A)
 *
 * (each record is on a per-uid chain the same way) is bounded by --max-records and by
 * --max-bytes (a record's size is its message plus its fields' JSON text).  Records are
 * counted per caller uid (the broker tells the callee: hyb_bus_request_get_caller_uid)
 * and per app within that uid.  To make room the oldest record goes, except that a uid
 * which already holds half of the ring (records or bytes) loses one of its own: the
 * sending app's oldest if that app holds half of the uid's share, else the uid's
 * oldest.  One local user cannot push the others out, under however many app names it
 * logs.  The counters of an app or a uid go with its last record, so the bookkeeping
 * is bounded by the ring.  Each record is also kept, retained, in the daemon's store at
 * /log/<app>/<seq> and deleted there when it leaves the ring; at
 * start logd reads /log/+/+ back.  Store writes are queued by the handlers and done by
 * the main loop, so a handler never waits for the store.
 *
 * The broker's own log lines arrive as the builtin bubble Log and become records of
 * @localhost/org.hybridos.bus/builtin.
 */
#include <errno.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include <hybrid/hybrid.h>
#include <hybrid/bus-store.h>
#include <hybrid/endpoint.h>

#include "service.h"

#define LOGD_APP "org.hybridos.logd"
#define QUERY_LIMIT_DEFAULT 100
#define QUERY_LIMIT_MAX 1000
#define QUERY_PAGE_BYTES (256 * 1024) /* a page stops growing past this */
/* What a query reply or a Record event adds around a record's JSON: the page's
 * {"records":[...],"next":N} and a comma, and room for the seq's digits. */
#define REPLY_ENVELOPE 96
/* The largest seq: every JSON reader holds it exactly (2^53), and numbering from the clock
 * (µs, see reload) stays far below it.  A stored record claiming more is not ours. */
#define SEQ_MAX (UINT64_C(1) << 53)

typedef struct app_stat app_stat;
typedef struct uid_stat uid_stat;
typedef struct store_op store_op;

typedef struct record {
        uint64_t seq;
        int64_t time_us;
        int level;
        char *host, *app, *runner, *message;
        char *fields; /* compact JSON text of an object, or NULL */
        size_t size;
        app_stat *owner;
        struct record *prev, *next;         /* the ring, by seq */
        struct record *app_prev, *app_next; /* the owner's records, by seq */
        struct record *uid_prev, *uid_next; /* the owner's uid's records, by seq */
        store_op *pending;                  /* its store write, while queued */
} record;

/* The records of one app name of one uid; freed with its last record. */
struct app_stat {
        char *name;
        uid_stat *uid;
        size_t count, bytes;
        record *first, *last;
        app_stat *prev, *next;
};

/* The records of one caller uid (UID_NONE: the broker's lines and records read back from
 * the store, whose uid is not kept); freed with its last record. */
struct uid_stat {
        uid_t uid;
        size_t count, bytes;
        record *first, *last;
        uid_stat *prev, *next;
};

#define UID_NONE ((uid_t)-1)

struct store_op {
        bool del, cancelled;
        char furi[320];
        char *json; /* writes: the record */
        store_op *next;
};

typedef struct logd {
        hyb_bus *bus;
        size_t max_records, max_bytes;
        size_t count, bytes;
        uint64_t next_seq;
        record *head, *tail;
        app_stat *apps;
        uid_stat *uids;
        size_t n_apps, n_uids;
        app_stat *filling; /* the app ring_append makes room for */
        store_op *ops, **ops_tail;
        bool store_broken; /* said once that the store refuses us */
} logd;

static const char *const level_names[8] = {
        NULL, NULL, NULL, "error", "warning", "notice", "info", "debug",
};

static int level_parse(const char *s)
{
        for (int i = 3; i < 8; i++)
                if (s && strcmp(s, level_names[i]) == 0)
                        return i;
        return -1;
}

static int64_t realtime_us(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---------------------------------------------------------------- store queue */

static void queue_op(logd *d, store_op *op)
{
        op->next = NULL;
        *d->ops_tail = op;
        d->ops_tail = &op->next;
}

static void record_furi(const record *r, char *buf, size_t size)
{
        snprintf(buf, size, "/log/%s/%" PRIu64, r->app, r->seq);
}

static json_t *record_json(const record *r)
{
        json_t *j = json_pack("{s:I, s:I, s:s, s:s, s:s, s:s, s:s}", "seq", (json_int_t)r->seq,
                              "time", (json_int_t)r->time_us, "host", r->host, "app", r->app,
                              "runner", r->runner, "level", level_names[r->level], "message",
                              r->message);

        if (j && r->fields)
                json_object_set_new(j, "fields", json_loads(r->fields, 0, NULL));
        return j;
}

static void queue_write(logd *d, record *r)
{
        store_op *op = calloc(1, sizeof *op);
        json_t *j = record_json(r);

        if (op && j)
                op->json = json_dumps(j, JSON_COMPACT);
        json_decref(j);
        if (!op || !op->json) {
                free(op);
                return;
        }
        record_furi(r, op->furi, sizeof op->furi);
        r->pending = op;
        queue_op(d, op);
}

static void queue_delete(logd *d, record *r)
{
        store_op *op;

        if (r->pending) {
                /* never written: nothing to delete */
                r->pending->cancelled = true;
                r->pending = NULL;
                return;
        }
        op = calloc(1, sizeof *op);
        if (!op)
                return;
        op->del = true;
        record_furi(r, op->furi, sizeof op->furi);
        queue_op(d, op);
}

static void store_complain(logd *d, const char *what, int r, const hyb_error *e)
{
        if (d->store_broken)
                return;
        d->store_broken = true;
        fprintf(stderr, "hybrid-logd: store %s: %s (records are kept in memory only)\n", what,
                e->message[0] ? e->message : hyb_strerror(r));
}

static record *find_seq(logd *d, uint64_t seq);

/*
 * Runs the queued store operations, oldest first.  Each is a synchronous store call,
 * during which the bus may dispatch new log calls: they only append to the queue.
 */
static int flush_ops(logd *d)
{
        store_op *op;
        int r = 0;

        while ((op = d->ops)) {
                hyb_error e;

                d->ops = op->next;
                if (!d->ops)
                        d->ops_tail = &d->ops;
                hyb_error_clear(&e);
                if (!op->cancelled && !op->del) {
                        hyb_obj *v = NULL;
                        uint64_t seq = strtoull(strrchr(op->furi, '/') + 1, NULL, 10);
                        record *rec = find_seq(d, seq);

                        if (rec && rec->pending == op)
                                rec->pending = NULL;
                        r = hyb_obj_from_json(op->json, strlen(op->json), &v, &e);
                        if (r >= 0)
                                r = hyb_bus_store_write(d->bus, op->furi, v, 0, &e);
                        hyb_obj_unref(v);
                        if (r < 0 && r != HYB_E_CLOSED)
                                store_complain(d, "write", r, &e);
                } else if (!op->cancelled) {
                        r = hyb_bus_store_delete(d->bus, op->furi, &e);
                        if (r < 0 && r != HYB_E_CLOSED)
                                store_complain(d, "delete", r, &e);
                }
                free(op->json);
                free(op);
                if (r == HYB_E_CLOSED)
                        return r;
        }
        return 0;
}

/* ---------------------------------------------------------------- the ring */

static record *find_seq(logd *d, uint64_t seq)
{
        /* the queue is flushed promptly: the record is near the tail */
        for (record *r = d->tail; r; r = r->prev) {
                if (r->seq == seq)
                        return r;
                if (r->seq < seq)
                        break;
        }
        return NULL;
}

static void uid_drop(logd *d, uid_stat *u)
{
        if (u->prev)
                u->prev->next = u->next;
        else
                d->uids = u->next;
        if (u->next)
                u->next->prev = u->prev;
        d->n_uids--;
        free(u);
}

static void app_drop(logd *d, app_stat *a)
{
        uid_stat *u = a->uid;

        if (a->prev)
                a->prev->next = a->next;
        else
                d->apps = a->next;
        if (a->next)
                a->next->prev = a->prev;
        d->n_apps--;
        free(a->name);
        free(a);
        if (u->count == 0 && !(d->filling && d->filling->uid == u))
                uid_drop(d, u);
}

/* The counters of app name under uid, made if new (they hold no record yet). */
static app_stat *app_get(logd *d, uid_t uid, const char *name)
{
        uid_stat *u;
        app_stat *a;

        for (a = d->apps; a; a = a->next)
                if (a->uid->uid == uid && strcasecmp(a->name, name) == 0)
                        return a;
        for (u = d->uids; u; u = u->next)
                if (u->uid == uid)
                        break;
        if (!u) {
                u = calloc(1, sizeof *u);
                if (!u)
                        return NULL;
                u->uid = uid;
                u->next = d->uids;
                if (d->uids)
                        d->uids->prev = u;
                d->uids = u;
                d->n_uids++;
        }
        a = calloc(1, sizeof *a);
        if (!a || !(a->name = strdup(name))) {
                free(a);
                if (u->count == 0)
                        uid_drop(d, u);
                return NULL;
        }
        a->uid = u;
        a->next = d->apps;
        if (d->apps)
                d->apps->prev = a;
        d->apps = a;
        d->n_apps++;
        return a;
}

static void record_free(record *r)
{
        if (!r)
                return;
        free(r->host);
        free(r->app);
        free(r->runner);
        free(r->message);
        free(r->fields);
        free(r);
}

/* Takes r out of the ring (and, with in_store, out of the store). */
static void ring_remove(logd *d, record *r, bool in_store)
{
        app_stat *a = r->owner;
        uid_stat *u = a->uid;

        if (r->prev)
                r->prev->next = r->next;
        else
                d->head = r->next;
        if (r->next)
                r->next->prev = r->prev;
        else
                d->tail = r->prev;
        if (r->app_prev)
                r->app_prev->app_next = r->app_next;
        else
                a->first = r->app_next;
        if (r->app_next)
                r->app_next->app_prev = r->app_prev;
        else
                a->last = r->app_prev;
        if (r->uid_prev)
                r->uid_prev->uid_next = r->uid_next;
        else
                u->first = r->uid_next;
        if (r->uid_next)
                r->uid_next->uid_prev = r->uid_prev;
        else
                u->last = r->uid_prev;
        a->count--;
        a->bytes -= r->size;
        u->count--;
        u->bytes -= r->size;
        d->count--;
        d->bytes -= r->size;
        if (in_store)
                queue_delete(d, r);
        record_free(r);
        if (a->count == 0 && a != d->filling)
                app_drop(d, a);
}

/* The record to drop to make room for one more record of app a (see the top). */
static record *victim(logd *d, app_stat *a)
{
        uid_stat *u = a->uid;

        if (u->first && (u->count * 2 >= d->max_records || u->bytes * 2 >= d->max_bytes)) {
                if (a->first && (a->count * 2 >= u->count || a->bytes * 2 >= u->bytes))
                        return a->first;
                return u->first;
        }
        return d->head;
}

/*
 * Appends r (seq set) to the ring, dropping what must go; r->owner is set here.  a stays
 * (it is in use) even when making room takes its last record: it gets r.
 */
static void ring_append(logd *d, record *r, app_stat *a)
{
        uid_stat *u = a->uid;

        d->filling = a; /* ring_remove must not free a (or its uid) meanwhile */
        while (d->count && (d->count + 1 > d->max_records || d->bytes + r->size > d->max_bytes))
                ring_remove(d, victim(d, a), true);
        d->filling = NULL;
        r->owner = a;
        r->prev = d->tail;
        if (d->tail)
                d->tail->next = r;
        else
                d->head = r;
        d->tail = r;
        r->app_prev = a->last;
        if (a->last)
                a->last->app_next = r;
        else
                a->first = r;
        a->last = r;
        r->uid_prev = u->last;
        if (u->last)
                u->last->uid_next = r;
        else
                u->first = r;
        u->last = r;
        a->count++;
        a->bytes += r->size;
        u->count++;
        u->bytes += r->size;
        d->count++;
        d->bytes += r->size;
}

static int record_new(const char *host, const char *app, const char *runner, int level,
                      const char *message, const char *fields, int64_t time_us, record **ret)
{
        record *r = calloc(1, sizeof *r);

        if (!r)
                return -ENOMEM;
        r->host = strdup(host);
        r->app = strdup(app);
        r->runner = strdup(runner);
        r->message = strdup(message);
        r->fields = fields ? strdup(fields) : NULL;
        if (!r->host || !r->app || !r->runner || !r->message || (fields && !r->fields)) {
                record_free(r);
                return -ENOMEM;
        }
        r->level = level;
        r->time_us = time_us;
        r->size = strlen(message) + (fields ? strlen(fields) : 0);
        *ret = r;
        return 0;
}

/* The largest record JSON a reply (and an event) can carry: the daemon's max_body. */
static size_t record_json_max(const logd *d)
{
        size_t mb = hyb_bus_get_max_body(d->bus);

        return mb > REPLY_ENVELOPE ? mb - REPLY_ENVELOPE : 0;
}

/* A new record of uid: into the ring, the store queue and to the followers. */
static int add_record(logd *d, record *r, uid_t uid, hyb_error *e)
{
        app_stat *a;
        json_t *j;
        char *text;
        size_t len;

        if (r->size > d->max_bytes) {
                e->code = HYB_E_TOO_LARGE;
                snprintf(e->message, sizeof e->message,
                         "record of %zu bytes is larger than the whole ring (--max-bytes %zu)",
                         r->size, d->max_bytes);
                record_free(r);
                return HYB_E_TOO_LARGE;
        }
        r->seq = d->next_seq;
        j = record_json(r);
        text = j ? json_dumps(j, JSON_COMPACT) : NULL;
        json_decref(j);
        if (!text) {
                record_free(r);
                return -ENOMEM;
        }
        /* The call's body fit the daemon's max_body, but the record adds its time, host,
         * app and runner: one that no query page and no Record event could carry would
         * make the log unreadable. */
        len = strlen(text);
        if (len > record_json_max(d)) {
                e->code = HYB_E_TOO_LARGE;
                snprintf(e->message, sizeof e->message,
                         "record of %zu bytes as JSON does not fit a reply (the daemon's "
                         "max_body is %zu)",
                         len, hyb_bus_get_max_body(d->bus));
                free(text);
                record_free(r);
                return HYB_E_TOO_LARGE;
        }
        a = app_get(d, uid, r->app);
        if (!a) {
                free(text);
                record_free(r);
                return -ENOMEM;
        }
        d->next_seq++;
        ring_append(d, r, a);
        queue_write(d, r);
        hyb_bus_fire(d->bus, "Record", text, len, HYB_BODY_JSON, NULL, NULL);
        free(text);
        return 0;
}

/* "@host/app/runner" into its three parts (in buf). */
static bool split_endpoint(const char *name, char *buf, size_t size, char **host, char **app,
                           char **runner)
{
        char *s1, *s2;

        if (!name || name[0] != '@' || strlen(name) >= size)
                return false;
        strcpy(buf, name + 1);
        s1 = strchr(buf, '/');
        s2 = s1 ? strchr(s1 + 1, '/') : NULL;
        if (!s2)
                return false;
        *s1 = *s2 = '\0';
        *host = buf;
        *app = s1 + 1;
        *runner = s2 + 1;
        return true;
}

/* ---------------------------------------------------------------- procedures */

static int reply_error(hyb_bus_request *req, int r, const hyb_error *e)
{
        int status = hyb_err_to_status(r);

        return hyb_bus_request_reply_error(req, status > 0 ? status : 500,
                                           e && e->message[0] ? e->message : hyb_strerror(r));
}

static int on_log(hyb_bus_request *req, void *userdata)
{
        logd *d = userdata;
        char buf[512], *host, *app, *runner, *fields = NULL, out[64];
        const char *body, *lv;
        json_t *p, *jf;
        record *rec = NULL;
        hyb_error e;
        size_t len;
        uid_t uid;
        int level, r, n;

        body = hyb_bus_request_get_body(req, &len);
        if (hyb_bus_request_get_caller_uid(req, &uid) < 0)
                return hyb_bus_request_reply_error(req, 500, "the caller's uid is unknown");
        if (!split_endpoint(hyb_bus_request_get_caller(req), buf, sizeof buf, &host, &app, &runner))
                return hyb_bus_request_reply_error(req, 400, "caller without an endpoint name");
        p = json_loadb(body, len, 0, NULL);
        if (!p)
                return hyb_bus_request_reply_error(req, 400, "params are not a JSON object");
        lv = json_string_value(json_object_get(p, "level"));
        level = lv ? level_parse(lv) : HYB_LOG_INFO;
        if (level < 0) {
                json_decref(p);
                return hyb_bus_request_reply_error(
                        req, 400, "level must be one of debug, info, notice, warning, error");
        }
        jf = json_object_get(p, "fields");
        if (jf && !json_is_null(jf))
                fields = json_dumps(jf, JSON_COMPACT);
        hyb_error_clear(&e);
        r = record_new(host, app, runner, level,
                       json_string_value(json_object_get(p, "message")), fields, realtime_us(),
                       &rec);
        free(fields);
        json_decref(p);
        if (r >= 0)
                r = add_record(d, rec, uid, &e);
        if (r < 0)
                return reply_error(req, r, &e);
        n = snprintf(out, sizeof out, "{\"seq\":%" PRIu64 "}", d->next_seq - 1);
        return hyb_bus_request_reply(req, 200, out, (size_t)n, HYB_BODY_JSON);
}

static int on_query(hyb_bus_request *req, void *userdata)
{
        logd *d = userdata;
        const char *body, *glob, *lv;
        json_t *p, *out, *list, *lim;
        json_int_t limit = QUERY_LIMIT_DEFAULT, since = INT64_MIN, after = -1;
        size_t len, bytes = 0, n = 0, sz, hard = record_json_max(d);
        uint64_t last = 0;
        record *r;
        char *text;
        int level = 7, st;

        body = hyb_bus_request_get_body(req, &len);
        p = json_loadb(body, len, 0, NULL);
        if (!p)
                return hyb_bus_request_reply_error(req, 400, "params are not a JSON object");
        glob = json_string_value(json_object_get(p, "app"));
        lv = json_string_value(json_object_get(p, "level"));
        if (lv && (level = level_parse(lv)) < 0) {
                json_decref(p);
                return hyb_bus_request_reply_error(
                        req, 400, "level must be one of debug, info, notice, warning, error");
        }
        if (json_object_get(p, "since"))
                since = json_integer_value(json_object_get(p, "since"));
        if (json_object_get(p, "after"))
                after = json_integer_value(json_object_get(p, "after"));
        lim = json_object_get(p, "limit");
        if (lim) {
                limit = json_integer_value(lim);
                if (limit < 1 || limit > QUERY_LIMIT_MAX) {
                        json_decref(p);
                        return hyb_bus_request_reply_error(req, 400, "limit must be 1..1000");
                }
        }
        out = json_object();
        list = json_array();
        json_object_set_new(out, "records", list);
        json_object_set_new(out, "next", json_null());
        for (r = d->head; r; r = r->next) {
                json_t *j;

                if (after >= 0 && r->seq <= (uint64_t)after)
                        continue;
                if (r->level > level || r->time_us < since)
                        continue;
                if (glob && fnmatch(glob, r->app, FNM_CASEFOLD) != 0)
                        continue;
                j = record_json(r);
                sz = j ? json_dumpb(j, NULL, 0, JSON_COMPACT) + 1 : 0;
                if ((json_int_t)n == limit || (n && bytes + sz > QUERY_PAGE_BYTES) ||
                    (n && bytes + sz > hard)) {
                        /* more after this page: the next one resumes after its last record */
                        json_decref(j);
                        json_object_set_new(out, "next", json_integer((json_int_t)last));
                        break;
                }
                last = r->seq;
                if (!j || sz > hard) {
                        /* too big for any reply (a max_body lowered since it came): passed
                         * over, the page goes on after it */
                        json_decref(j);
                        continue;
                }
                bytes += sz;
                json_array_append_new(list, j);
                n++;
        }
        json_decref(p);
        text = json_dumps(out, JSON_COMPACT);
        json_decref(out);
        if (!text)
                return hyb_bus_request_reply_error(req, 500, "out of memory");
        st = hyb_bus_request_reply(req, 200, text, strlen(text), HYB_BODY_JSON);
        free(text);
        return st;
}

/* stats {} -> {"records","bytes","apps","uids"}: what the ring holds and how many app and
 * uid counters it keeps (both go with their last record). */
static int on_stats(hyb_bus_request *req, void *userdata)
{
        logd *d = userdata;
        char out[160];
        int n = snprintf(out, sizeof out, "{\"records\":%zu,\"bytes\":%zu,\"apps\":%zu,\"uids\":%zu}",
                         d->count, d->bytes, d->n_apps, d->n_uids);

        return hyb_bus_request_reply(req, 200, out, (size_t)n, HYB_BODY_JSON);
}

static const hyb_arg_policy log_args[] = {
        { "message", HYB_JSON_STRING, 1 },
        { "level", HYB_JSON_STRING, 0 },
        { "fields", HYB_JSON_OBJECT, 0 },
};
static const hyb_arg_policy query_args[] = {
        { "app", HYB_JSON_STRING, 0 },
        { "level", HYB_JSON_STRING, 0 },
        { "since", HYB_JSON_INTEGER, 0 },
        { "after", HYB_JSON_INTEGER, 0 },
        { "limit", HYB_JSON_INTEGER, 0 },
};
static const hyb_method_def logd_methods[] = {
        HYB_METHOD("log", on_log, log_args),
        HYB_METHOD("query", on_query, query_args),
        HYB_METHOD_NOARGS("stats", on_stats),
};

/* The broker's own lines (builtin bubble Log: {"level","message"}). */
static void on_broker_line(hyb_bus *bus, const hyb_bus_event *ev, void *userdata)
{
        logd *d = userdata;
        const void *body;
        size_t len;
        json_t *j;
        record *rec;
        hyb_error e;
        char *fields = NULL;
        int level;

        body = hyb_bus_event_get_body(ev, &len);
        j = json_loadb(body, len, 0, NULL);
        level = level_parse(json_string_value(json_object_get(j, "level")));
        /* lines the broker could not hand us (we were behind) are counted in the next one */
        if (json_is_integer(json_object_get(j, "dropped"))) {
                json_t *f = json_pack("{s:O}", "dropped", json_object_get(j, "dropped"));

                fields = f ? json_dumps(f, JSON_COMPACT) : NULL;
                json_decref(f);
        }
        if (j && level >= 0 && json_string_value(json_object_get(j, "message")) &&
            record_new("localhost", "org.hybridos.bus", "builtin", level,
                       json_string_value(json_object_get(j, "message")), fields, realtime_us(),
                       &rec) >= 0) {
                hyb_error_clear(&e);
                add_record(d, rec, UID_NONE, &e);
        }
        free(fields);
        json_decref(j);
}

/* ---------------------------------------------------------------- reload */

static int seq_cmp(const void *a, const void *b)
{
        const record *x = *(record *const *)a, *y = *(record *const *)b;

        return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* A stored record back as a record; NULL if it is not one of ours. */
static record *record_from_obj(const hyb_obj *o)
{
        char *text = NULL;
        json_t *j = NULL, *jf;
        record *r = NULL;
        char *fields = NULL;
        const char *host, *app, *runner, *msg;
        int level;

        if (hyb_obj_to_json(o, &text, NULL) < 0)
                return NULL;
        j = json_loads(text, 0, NULL);
        hyb_free(text);
        host = json_string_value(json_object_get(j, "host"));
        app = json_string_value(json_object_get(j, "app"));
        runner = json_string_value(json_object_get(j, "runner"));
        msg = json_string_value(json_object_get(j, "message"));
        level = level_parse(json_string_value(json_object_get(j, "level")));
        jf = json_object_get(j, "fields");
        if (host && app && runner && msg && level >= 0 &&
            json_is_integer(json_object_get(j, "seq")) &&
            json_integer_value(json_object_get(j, "seq")) >= 1 &&
            (uint64_t)json_integer_value(json_object_get(j, "seq")) <= SEQ_MAX &&
            json_is_integer(json_object_get(j, "time"))) {
                if (json_is_object(jf))
                        fields = json_dumps(jf, JSON_COMPACT);
                if (record_new(host, app, runner, level, msg, fields,
                               json_integer_value(json_object_get(j, "time")), &r) >= 0)
                        r->seq = (uint64_t)json_integer_value(json_object_get(j, "seq"));
                free(fields);
        }
        json_decref(j);
        return r;
}

/* Reads /log/+/+ back into the ring, oldest first, within today's bounds. */
static void reload(logd *d)
{
        hyb_obj *all = NULL;
        hyb_error e;
        record **v;
        size_t n, k = 0;
        int r;

        hyb_error_clear(&e);
        r = hyb_bus_store_read(d->bus, "/log/+/+", &all, &e);
        if (r < 0) {
                fprintf(stderr, "hybrid-logd: cannot read the log back from the store: %s "
                                "(starting with an empty ring)\n",
                        e.message[0] ? e.message : hyb_strerror(r));
                /* The old records stay where they are: new ones must not take their keys.
                 * Numbering from the clock (µs) puts them past any seq counted from 1. */
                if (r != HYB_E_UNAVAILABLE)
                        d->next_seq = (uint64_t)realtime_us();
                return;
        }
        n = hyb_obj_get_kind(all) == HYB_OBJ_OBJS ? hyb_obj_get_len(all) : 0;
        v = calloc(n + 1, sizeof *v);
        for (size_t i = 0; v && i < n; i++) {
                record *rec = record_from_obj(hyb_obj_get_at(all, i));

                if (rec)
                        v[k++] = rec;
        }
        hyb_obj_unref(all);
        if (!v)
                return;
        qsort(v, k, sizeof *v, seq_cmp);
        for (size_t i = 0; i < k; i++) {
                app_stat *a = v[i]->size <= d->max_bytes ? app_get(d, UID_NONE, v[i]->app) : NULL;

                if (!a) {
                        /* too big for today's ring: it goes from the store too */
                        store_op *op = calloc(1, sizeof *op);

                        if (op) {
                                op->del = true;
                                record_furi(v[i], op->furi, sizeof op->furi);
                                queue_op(d, op);
                        }
                        record_free(v[i]);
                        continue;
                }
                ring_append(d, v[i], a);
                if (v[i]->seq >= d->next_seq)
                        d->next_seq = v[i]->seq + 1;
        }
        free(v);
}

/* ---------------------------------------------------------------- main */

static void logd_free(logd *d)
{
        while (d->head)
                ring_remove(d, d->head, false);
        while (d->apps) /* none left: each went with its last record */
                app_drop(d, d->apps);
        while (d->ops) {
                store_op *op = d->ops;

                d->ops = op->next;
                free(op->json);
                free(op);
        }
}

static int usage(void)
{
        fprintf(stderr, "usage: hybrid-logd [--bus PATH] [--max-records N] [--max-bytes B]\n");
        return 2;
}

static bool parse_size(const char *s, size_t *ret)
{
        char *end;
        unsigned long long v;

        errno = 0;
        v = strtoull(s, &end, 10);
        if (errno || end == s || *end || v < 1 || v > (1ull << 40) || *s == '-')
                return false;
        *ret = (size_t)v;
        return true;
}

int main(int argc, char **argv)
{
        const char *path = NULL;
        logd d = { .max_records = 1000, .max_bytes = 1024 * 1024, .next_seq = 1 };
        hyb_slot *methods = NULL, *bubble = NULL, *lines = NULL;
        hyb_error e;
        int sfd, r, status = 0;

        d.ops_tail = &d.ops;
        for (int i = 1; i < argc; i++) {
                if (i + 1 < argc && strcmp(argv[i], "--bus") == 0)
                        path = argv[++i];
                else if (i + 1 < argc && strcmp(argv[i], "--max-records") == 0) {
                        if (!parse_size(argv[++i], &d.max_records))
                                return usage();
                } else if (i + 1 < argc && strcmp(argv[i], "--max-bytes") == 0) {
                        if (!parse_size(argv[++i], &d.max_bytes))
                                return usage();
                } else if (strcmp(argv[i], "--help") == 0) {
                        printf("usage: hybrid-logd [--bus PATH] [--max-records N] [--max-bytes B]\n"
                               "The bus's logging service; see hybrid-logd(1).\n");
                        return 0;
                } else
                        return usage();
        }
        if (path && !*path)
                path = NULL;

        sfd = service_signals();
        if (sfd < 0)
                return 1;

        hyb_error_clear(&e);
        r = hyb_bus_connect(path, LOGD_APP, "main", &d.bus, &e);
        if (r < 0) {
                service_report("hybrid-logd", "connect", r, &e);
                close(sfd);
                /* reached, but refused: another logd (409) or policy.apps (403) */
                return r == HYB_E_CONFLICT || r == HYB_E_FORBIDDEN ? 1 : 3;
        }
        /* The ring comes back from the store before anyone can log. */
        reload(&d);
        if (flush_ops(&d) == HYB_E_CLOSED) {
                status = 3;
                goto out;
        }
        hyb_error_clear(&e);
        r = hyb_bus_register_event(d.bus, "Record", NULL, NULL, &bubble, &e);
        if (r >= 0)
                r = hyb_endpoint_register_table(d.bus, logd_methods, sizeof(logd_methods[0]),
                                                sizeof(logd_methods) / sizeof(logd_methods[0]),
                                                &d, &methods, &e);
        if (r < 0) {
                service_report("hybrid-logd", "register", r, &e);
                status = 1;
                goto out;
        }
        hyb_error_clear(&e);
        r = hyb_bus_subscribe(d.bus, HYB_BUS_BUILTIN_ENDPOINT, "Log", on_broker_line, &d, &lines,
                              &e);
        if (r < 0)
                fprintf(stderr, "hybrid-logd: the broker's own lines are not available: %s\n",
                        e.message[0] ? e.message : hyb_strerror(r));
        printf("%s\n", hyb_bus_get_endpoint_name(d.bus));
        fflush(stdout);

        for (;;) {
                struct pollfd p[2];
                uint64_t due = UINT64_MAX, now;

                while ((r = hyb_bus_process(d.bus)) > 0)
                        ;
                if (r >= 0 && d.ops)
                        r = flush_ops(&d);
                if (r < 0) {
                        fprintf(stderr, "hybrid-logd: %s\n", hyb_strerror(r));
                        status = 3;
                        break;
                }
                if (d.ops)
                        continue;
                hyb_bus_get_timeout(d.bus, &due);
                now = hyb_now_usec();
                p[0].fd = hyb_bus_get_fd(d.bus);
                p[0].events = (short)hyb_bus_get_events(d.bus);
                p[1].fd = sfd;
                p[1].events = POLLIN;
                if (poll(p, 2, due == UINT64_MAX ? -1 : due > now ? (int)((due - now + 999) / 1000) : 0) < 0 &&
                    errno != EINTR)
                        break;
                if (p[1].revents & POLLIN)
                        break;
        }
out:
        hyb_slot_unref(lines);
        hyb_slot_unref(methods);
        hyb_slot_unref(bubble);
        hyb_bus_unref(d.bus);
        logd_free(&d);
        close(sfd);
        return status;
}
