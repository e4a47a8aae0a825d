/* SPDX-License-Identifier: MIT */
/*
 * hybrid-sysinfo - system information on the bus (doc/hybrid-sysinfo.md).
 *
 *   hybrid-sysinfo [--bus PATH] [--interval SECONDS] [--runner NAME] [--disk PATH]...
 *
 * Endpoint @localhost/org.hybridos.sysinfo/<runner> (default runner "main") offers the
 * procedures uptime, load, memory, disk, network and all (no arguments, JSON results),
 * fires the bubble INFO with what `all` returns every --interval seconds (default 5),
 * and writes the same readings to the daemon's store under /sys/info/... (the broker
 * lets only this app, run as the daemon's uid or root, write there).  The readings
 * come from sysinfo-read.c.  Prints the endpoint name once the first readings are in
 * the store; SIGTERM / SIGINT end it.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include <hybrid/bus-store.h>
#include <hybrid/bus.h>
#include <hybrid/endpoint.h>

#include "service.h"
#include "sysinfo-read.h"

#define PROG "hybrid-sysinfo"

typedef struct sysinfo {
        hyb_bus *bus;
        si_disks disks;
        bool store_ok;    /* false once the store refused a write: events and calls go on */
        info_list stored; /* what the store holds under /sys/info/ (what we wrote last) */
        unsigned long ticks;
} sysinfo;

/* The readings of l as nested JSON objects: "net/lo/rx_bytes" is {"net":{"lo":{"rx_bytes":..}}}. */
static json_t *to_json(const info_list *l)
{
        json_t *root = json_object();

        for (size_t i = 0; root && i < l->n; i++) {
                char key[SI_KEY_MAX], *save = NULL, *seg, *next;
                json_t *o = root;

                memcpy(key, l->v[i].key, sizeof(key));
                seg = strtok_r(key, "/", &save);
                while (seg && (next = strtok_r(NULL, "/", &save))) {
                        json_t *child = json_object_get(o, seg);

                        if (!json_is_object(child)) {
                                child = json_object();
                                if (json_object_set_new(o, seg, child) < 0)
                                        goto fail;
                        }
                        o = child;
                        seg = next;
                }
                if (!seg ||
                    json_object_set_new(o, seg,
                                        l->v[i].is_real ? json_real(l->v[i].real)
                                                        : json_integer(l->v[i].integer)) < 0)
                        goto fail;
        }
        return root;
fail:
        json_decref(root);
        return NULL;
}

/* Reads groups [from, to) into l. */
static int read_groups(sysinfo *si, si_group from, si_group to, info_list *l)
{
        for (si_group g = from; g < to; g++) {
                int r = si_read(g, &si->disks, l);

                if (r < 0)
                        return r;
        }
        return 0;
}

/* Answers a call with the readings of groups [from, to); one group answers its own object
 * ({"1m":..} for load), `all` the whole tree. */
static int reply_groups(hyb_bus_request *req, sysinfo *si, si_group from, si_group to)
{
        info_list l = {0};
        json_t *root = NULL, *part;
        char *text = NULL;
        int r;

        r = read_groups(si, from, to, &l);
        if (r < 0) {
                info_list_free(&l);
                return hyb_bus_request_reply_error(req, 500, strerror(-r));
        }
        root = to_json(&l);
        info_list_free(&l);
        part = root;
        if (root && to == from + 1) {
                part = json_object_get(root, si_group_prefix(from));
                if (!part) /* a group with nothing to report (no disk) */
                        part = json_object_set_new(root, si_group_prefix(from), json_object()) < 0
                                       ? NULL
                                       : json_object_get(root, si_group_prefix(from));
        }
        text = part ? json_dumps(part, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(10))
                    : NULL;
        json_decref(root);
        if (!text)
                return hyb_bus_request_reply_error(req, 500, "out of memory");
        r = hyb_bus_request_reply(req, 200, text, strlen(text), HYB_BODY_JSON);
        free(text);
        return r;
}

static int on_uptime(hyb_bus_request *req, void *ud)
{
        return reply_groups(req, ud, SI_UPTIME, SI_UPTIME + 1);
}
static int on_load(hyb_bus_request *req, void *ud)
{
        return reply_groups(req, ud, SI_LOAD, SI_LOAD + 1);
}
static int on_memory(hyb_bus_request *req, void *ud)
{
        return reply_groups(req, ud, SI_MEM, SI_MEM + 1);
}
static int on_disk(hyb_bus_request *req, void *ud)
{
        return reply_groups(req, ud, SI_DISK, SI_DISK + 1);
}
static int on_network(hyb_bus_request *req, void *ud)
{
        return reply_groups(req, ud, SI_NET, SI_NET + 1);
}
static int on_all(hyb_bus_request *req, void *ud)
{
        return reply_groups(req, ud, 0, SI_N_GROUPS);
}

static const hyb_method_def sysinfo_methods[] = {
        HYB_METHOD_NOARGS("uptime", on_uptime),   HYB_METHOD_NOARGS("load", on_load),
        HYB_METHOD_NOARGS("memory", on_memory),   HYB_METHOD_NOARGS("disk", on_disk),
        HYB_METHOD_NOARGS("network", on_network), HYB_METHOD_NOARGS("all", on_all),
};

static void store_failed(sysinfo *si, const char *what, int r, const hyb_error *e)
{
        fprintf(stderr, PROG ": the store refused %s: %s %s; readings go on as calls and events\n",
                what, hyb_err_name(r), e->message[0] ? e->message : hyb_strerror(r));
        si->store_ok = false;
}

/* The reading of l with key, or NULL; hint is where it was last time (lists keep their order). */
static const info_value *find(const info_list *l, size_t hint, const char *key)
{
        if (hint < l->n && strcmp(l->v[hint].key, key) == 0)
                return &l->v[hint];
        for (size_t i = 0; i < l->n; i++)
                if (strcmp(l->v[i].key, key) == 0)
                        return &l->v[i];
        return NULL;
}

static bool same(const info_value *a, const info_value *b)
{
        return a->is_real == b->is_real &&
               (a->is_real ? a->real == b->real : a->integer == b->integer);
}

/*
 * Writes the readings of l under /sys/info/: only those that changed since the last write
 * (totals, idle interfaces: most of them), so a store on flash is not rewritten every
 * period; a key gone since (an interface removed, a disk unmounted) is deleted.
 */
static void store_put(sysinfo *si, const info_list *l)
{
        char furi[SI_KEY_MAX + 16];
        hyb_error e;
        int r;

        for (size_t i = 0; i < l->n && si->store_ok; i++) {
                const info_value *old = find(&si->stored, i, l->v[i].key);
                hyb_obj *o = NULL;

                if (old && same(old, &l->v[i]))
                        continue;
                hyb_error_clear(&e);
                snprintf(furi, sizeof(furi), "/sys/info/%s", l->v[i].key);
                r = l->v[i].is_real ? hyb_obj_new_real(l->v[i].real, &o)
                                    : hyb_obj_new_int(l->v[i].integer, &o);
                if (r >= 0)
                        r = hyb_bus_store_write(si->bus, furi, o, 0, &e);
                hyb_obj_unref(o);
                if (r < 0)
                        store_failed(si, furi, r, &e);
        }
        for (size_t i = 0; i < si->stored.n && si->store_ok; i++) {
                if (find(l, i, si->stored.v[i].key))
                        continue;
                hyb_error_clear(&e);
                snprintf(furi, sizeof(furi), "/sys/info/%s", si->stored.v[i].key);
                r = hyb_bus_store_delete(si->bus, furi, &e);
                if (r < 0)
                        store_failed(si, furi, r, &e);
        }
        if (si->store_ok && info_list_copy(&si->stored, l) < 0)
                info_list_clear(&si->stored); /* out of memory: write everything next time */
}

/* One period: read everything, write it to the store, fire INFO with it. */
static int tick(sysinfo *si)
{
        info_list l = {0};
        json_t *root;
        char *text;
        int r;

        r = read_groups(si, 0, SI_N_GROUPS, &l);
        if (r < 0) {
                fprintf(stderr, PROG ": reading /proc: %s\n", strerror(-r));
                info_list_free(&l);
                return r;
        }
        store_put(si, &l);
        root = to_json(&l);
        info_list_free(&l);
        text = root ? json_dumps(root, JSON_COMPACT | JSON_REAL_PRECISION(10)) : NULL;
        json_decref(root);
        if (!text)
                return -ENOMEM;
        r = hyb_bus_fire(si->bus, "INFO", text, strlen(text), HYB_BODY_JSON, NULL, NULL);
        free(text);
        si->ticks++;
        return r;
}

/* service_run's tick: a failed tick is tried again next period, unless the bus is gone. */
static int run_tick(hyb_bus *bus, void *userdata)
{
        if (tick(userdata) < 0 && !hyb_bus_is_open(bus))
                return 3;
        return SERVICE_CONTINUE;
}

/* The usage line: on stderr for a usage error (2), on stdout for --help (0). */
static int usage_to(FILE *f, int status)
{
        fprintf(f, "usage: " PROG " [--bus PATH] [--interval SECONDS] [--runner NAME] "
                   "[--disk PATH]...\n");
        if (status == 0)
                fprintf(f,
                        "System information on the bus and under /sys/info/; see " PROG "(1).\n");
        return status;
}

static int usage(void)
{
        return usage_to(stderr, 2);
}

int main(int argc, char **argv)
{
        const char *path = getenv("HYBRID_BUS"), *runner = "main";
        const char **disks = calloc((size_t)argc, sizeof(*disks));
        sysinfo si = {.store_ok = true};
        hyb_slot *methods = NULL, *bubble = NULL;
        hyb_error e;
        double interval = 5;
        uint64_t period;
        int sfd, r, status = 0;

        if (!disks)
                return 1;
        for (int i = 1; i < argc; i++) {
                char *end = NULL;

                if (strcmp(argv[i], "--help") == 0) {
                        free(disks);
                        return usage_to(stdout, 0);
                } else if (i + 1 < argc && strcmp(argv[i], "--bus") == 0)
                        path = argv[++i];
                else if (i + 1 < argc && strcmp(argv[i], "--runner") == 0)
                        runner = argv[++i];
                else if (i + 1 < argc && strcmp(argv[i], "--disk") == 0)
                        disks[si.disks.n++] = argv[++i];
                else if (i + 1 < argc && strcmp(argv[i], "--interval") == 0) {
                        interval = strtod(argv[++i], &end);
                        if (!end || *end || !isfinite(interval) || interval < 0.05 ||
                            interval > 86400)
                                goto bad_usage;
                } else
                        goto bad_usage;
        }
        si.disks.paths = disks;
        period = (uint64_t)(interval * 1e6);
        if (path && !*path)
                path = NULL;

        sfd = service_signals();
        if (sfd < 0)
                return 1;
        if (service_connect(PROG, path, "org.hybridos.sysinfo", runner, &si.bus) < 0)
                return 3;
        hyb_error_clear(&e);
        r = hyb_endpoint_register_table(si.bus, sysinfo_methods, sizeof(sysinfo_methods[0]),
                                        sizeof(sysinfo_methods) / sizeof(sysinfo_methods[0]), &si,
                                        &methods, &e);
        if (r >= 0)
                r = hyb_bus_register_event(si.bus, "INFO", NULL, NULL, &bubble, &e);
        if (r < 0) {
                service_report(PROG, "register", r, &e);
                status = 1;
                goto out;
        }
        /* What a previous run left (an interface or a disk gone since) goes first. */
        r = hyb_bus_store_delete(si.bus, "/sys/info/#", &e);
        if (r < 0)
                store_failed(&si, "the delete of /sys/info/#", r, &e);
        if (tick(&si) < 0) {
                status = 1;
                goto out;
        }
        printf("%s\n", hyb_bus_get_endpoint_name(si.bus));
        fflush(stdout);

        status = service_run(PROG, si.bus, sfd, hyb_now_usec() + period, period, run_tick, &si);
out:
        hyb_slot_unref(bubble);
        hyb_slot_unref(methods);
        hyb_bus_unref(si.bus);
        close(sfd);
        info_list_free(&si.stored);
        free(disks);
        return status;
bad_usage:
        free(disks);
        return usage();
}
