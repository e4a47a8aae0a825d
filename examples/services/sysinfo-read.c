/* SPDX-License-Identifier: MIT */
/*
 * sysinfo-read.c - hybrid-sysinfo's readings: /proc/uptime, /proc/loadavg,
 * /proc/meminfo, /proc/net/dev, and statvfs(3) on mounted filesystems.
 */
#include <errno.h>
#include <inttypes.h>
#include <mntent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include "sysinfo-read.h"

static const char *const prefixes[SI_N_GROUPS] = {"uptime", "load", "mem", "disk", "net"};

const char *si_group_prefix(si_group g)
{
        return g < SI_N_GROUPS ? prefixes[g] : NULL;
}

void info_list_clear(info_list *l)
{
        l->n = 0;
}

void info_list_free(info_list *l)
{
        free(l->v);
        l->v = NULL;
        l->n = l->cap = 0;
}

int info_list_copy(info_list *dst, const info_list *src)
{
        if (dst->cap < src->n) {
                info_value *nv = realloc(dst->v, src->n * sizeof(*nv));

                if (!nv)
                        return -ENOMEM;
                dst->v = nv;
                dst->cap = src->n;
        }
        if (src->n)
                memcpy(dst->v, src->v, src->n * sizeof(*dst->v));
        dst->n = src->n;
        return 0;
}

static info_value *push(info_list *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static info_value *push(info_list *l, const char *fmt, ...)
{
        va_list ap;
        info_value *v;
        int n;

        if (l->n == l->cap) {
                size_t cap = l->cap ? 2 * l->cap : 64;
                info_value *nv = realloc(l->v, cap * sizeof(*nv));

                if (!nv)
                        return NULL;
                l->v = nv;
                l->cap = cap;
        }
        v = &l->v[l->n];
        memset(v, 0, sizeof(*v));
        va_start(ap, fmt);
        n = vsnprintf(v->key, sizeof(v->key), fmt, ap);
        va_end(ap);
        if (n < 0 || (size_t)n >= sizeof(v->key))
                return NULL;
        l->n++;
        return v;
}

static int push_int(info_list *l, int64_t x, const char *fmt, const char *a, const char *b)
{
        info_value *v = push(l, fmt, a, b);

        if (!v)
                return -ENOMEM;
        v->integer = x;
        return 0;
}

static int push_real(info_list *l, double x, const char *key)
{
        info_value *v = push(l, "%s", key);

        if (!v)
                return -ENOMEM;
        v->is_real = true;
        v->real = x;
        return 0;
}

void si_segment(const char *name, char *out, size_t size)
{
        size_t o = 0;

        if (!size)
                return;
        if (strcmp(name, "/") == 0)
                name = "root";
        else if (*name == '/')
                name++;
        for (; *name && o + 1 < size; name++) {
                char ch = *name;
                bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                          (ch >= '0' && ch <= '9') || ch == '_' || ch == '.' || ch == '-';

                out[o++] = ok ? ch : '_';
        }
        out[o] = '\0';
        if (!o)
                snprintf(out, size, "root");
}

static int read_uptime(info_list *l)
{
        FILE *f = fopen("/proc/uptime", "re");
        double up = 0;
        int ok;

        if (!f)
                return -errno;
        ok = fscanf(f, "%lf", &up) == 1;
        fclose(f);
        if (!ok)
                return -EBADMSG;
        return push_real(l, up, "uptime");
}

static int read_load(info_list *l)
{
        FILE *f = fopen("/proc/loadavg", "re");
        double a1, a5, a15;
        int64_t running, tasks;
        int ok, r;

        if (!f)
                return -errno;
        ok = fscanf(f, "%lf %lf %lf %" SCNd64 "/%" SCNd64, &a1, &a5, &a15, &running, &tasks) == 5;
        fclose(f);
        if (!ok)
                return -EBADMSG;
        r = push_real(l, a1, "load/1m");
        if (r >= 0)
                r = push_real(l, a5, "load/5m");
        if (r >= 0)
                r = push_real(l, a15, "load/15m");
        if (r >= 0)
                r = push_int(l, running, "load/running", NULL, NULL);
        if (r >= 0)
                r = push_int(l, tasks, "load/tasks", NULL, NULL);
        return r;
}

static int read_mem(info_list *l)
{
        static const struct {
                const char *field, *key;
        } fields[] = {
                {"MemTotal", "total"},     {"MemFree", "free"},  {"MemAvailable", "available"},
                {"Buffers", "buffers"},    {"Cached", "cached"}, {"SwapTotal", "swap_total"},
                {"SwapFree", "swap_free"},
        };
        FILE *f = fopen("/proc/meminfo", "re");
        char line[256];
        int r = 0, found = 0;

        if (!f)
                return -errno;
        while (r >= 0 && fgets(line, sizeof(line), f)) {
                char *colon = strchr(line, ':');
                unsigned long long kib;

                if (!colon)
                        continue;
                *colon = '\0';
                for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
                        if (strcmp(line, fields[i].field) != 0)
                                continue;
                        if (sscanf(colon + 1, "%llu", &kib) != 1 || kib > INT64_MAX / 1024)
                                break;
                        r = push_int(l, (int64_t)kib * 1024, "mem/%s", fields[i].key, NULL);
                        found++;
                        break;
                }
        }
        fclose(f);
        if (r >= 0 && !found)
                r = -EBADMSG;
        return r;
}

/* Is name already a disk of l (two mounts of one filesystem, a path listed twice)? */
static bool have_disk(const info_list *l, size_t from, const char *name)
{
        char key[SI_KEY_MAX];

        snprintf(key, sizeof(key), "disk/%s/total", name);
        for (size_t i = from; i < l->n; i++)
                if (strcmp(l->v[i].key, key) == 0)
                        return true;
        return false;
}

static int disk_one(info_list *l, size_t from, const char *path)
{
        char name[96];
        struct statvfs s;
        uint64_t fr;
        int r;

        si_segment(path, name, sizeof(name));
        if (have_disk(l, from, name) || statvfs(path, &s) < 0 || s.f_blocks == 0)
                return 0;
        fr = s.f_frsize ? s.f_frsize : s.f_bsize;
        r = push_int(l, (int64_t)(s.f_blocks * fr), "disk/%s/%s", name, "total");
        if (r >= 0)
                r = push_int(l, (int64_t)(s.f_bfree * fr), "disk/%s/%s", name, "free");
        if (r >= 0)
                r = push_int(l, (int64_t)(s.f_bavail * fr), "disk/%s/%s", name, "available");
        if (r >= 0)
                r = push_int(l, (int64_t)((s.f_blocks - s.f_bfree) * fr), "disk/%s/%s", name,
                             "used");
        if (r >= 0)
                r = push_int(l, (int64_t)s.f_files, "disk/%s/%s", name, "files");
        if (r >= 0)
                r = push_int(l, (int64_t)s.f_ffree, "disk/%s/%s", name, "files_free");
        return r;
}

static int read_disk(const si_disks *disks, info_list *l)
{
        size_t from = l->n;
        struct mntent m, *e;
        char buf[4096];
        FILE *f;
        int r;

        if (disks && disks->n) {
                for (size_t i = 0; i < disks->n; i++)
                        if ((r = disk_one(l, from, disks->paths[i])) < 0)
                                return r;
                return 0;
        }
        r = disk_one(l, from, "/");
        f = setmntent("/proc/self/mounts", "re");
        if (!f)
                return r < 0 ? r : -errno;
        /* The filesystems of block devices; pseudo filesystems (proc, tmpfs, cgroup...) are
         * not disks. */
        while (r >= 0 && (e = getmntent_r(f, &m, buf, sizeof(buf))))
                if (strncmp(e->mnt_fsname, "/dev/", 5) == 0)
                        r = disk_one(l, from, e->mnt_dir);
        endmntent(f);
        return r;
}

static int read_net(info_list *l)
{
        static const char *const names[] = {"rx_bytes", "rx_packets", "rx_errors", "rx_dropped",
                                            "tx_bytes", "tx_packets", "tx_errors", "tx_dropped"};
        /* the columns of /proc/net/dev for them: receive 0-3, transmit 8-11 */
        static const int cols[] = {0, 1, 2, 3, 8, 9, 10, 11};
        FILE *f = fopen("/proc/net/dev", "re");
        char line[512];
        int r = 0, lineno = 0;

        if (!f)
                return -errno;
        while (r >= 0 && fgets(line, sizeof(line), f)) {
                unsigned long long c[16];
                char *colon, *p, *name, seg[64];
                int n = 0;

                if (++lineno <= 2) /* two header lines */
                        continue;
                colon = strchr(line, ':');
                if (!colon)
                        continue;
                *colon = '\0';
                name = line + strspn(line, " \t");
                for (p = colon + 1; n < 16; n++) {
                        char *end;

                        c[n] = strtoull(p, &end, 10);
                        if (end == p)
                                break;
                        p = end;
                }
                if (n < 12)
                        continue;
                si_segment(name, seg, sizeof(seg));
                for (size_t i = 0; i < sizeof(names) / sizeof(names[0]) && r >= 0; i++)
                        r = push_int(l, (int64_t)(c[cols[i]] & INT64_MAX), "net/%s/%s", seg,
                                     names[i]);
        }
        fclose(f);
        return r;
}

int si_read(si_group g, const si_disks *disks, info_list *l)
{
        switch (g) {
        case SI_UPTIME:
                return read_uptime(l);
        case SI_LOAD:
                return read_load(l);
        case SI_MEM:
                return read_mem(l);
        case SI_DISK:
                return read_disk(disks, l);
        case SI_NET:
                return read_net(l);
        default:
                return -EINVAL;
        }
}
