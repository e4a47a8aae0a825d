/* SPDX-License-Identifier: MIT */
/*
 * sysinfo-read.h - the readings of hybrid-sysinfo, taken from /proc and statvfs(3).
 *
 * A reading is a key (the path below /sys/info/, e.g. "load/1m", "net/eth0/rx_bytes")
 * and a number (an integer counter or a real).  Each group appends its readings to a
 * list; the service turns a list into store writes and JSON bodies.
 */
#ifndef SYSINFO_READ_H
#define SYSINFO_READ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SI_KEY_MAX 160

typedef struct info_value {
        char key[SI_KEY_MAX];
        bool is_real;
        double real;
        int64_t integer;
} info_value;

typedef struct info_list {
        info_value *v;
        size_t n, cap;
} info_list;

/* The groups, in the order "all" reads them. */
typedef enum si_group {
        SI_UPTIME, /* uptime (real seconds since boot) */
        SI_LOAD,   /* load/1m 5m 15m (reals), load/running, load/tasks */
        SI_MEM,    /* mem/total free available buffers cached swap_total swap_free (bytes) */
        SI_DISK,   /* disk/<name>/total free available used (bytes), files, files_free */
        SI_NET,    /* net/<if>/rx_bytes rx_packets rx_errors rx_dropped, tx_... (counters) */
        SI_N_GROUPS,
} si_group;

/* The disks to report: NULL/0 for every mounted block-device filesystem and /. */
typedef struct si_disks {
        const char *const *paths;
        size_t n;
} si_disks;

/* The key prefix of a group ("uptime", "load", "mem", "disk", "net"). */
const char *si_group_prefix(si_group g);

/*
 * Appends the readings of group g to l.  Returns 0, or -errno when its /proc file
 * cannot be read or parsed (or -ENOMEM); l keeps what was appended before.
 * A disk whose statvfs fails is left out.
 */
int si_read(si_group g, const si_disks *disks, info_list *l);

/* Empties l (keeps its memory); info_list_free releases it. */
void info_list_clear(info_list *l);
void info_list_free(info_list *l);
/* Makes dst a copy of src (dst's memory reused or grown): 0 or -ENOMEM (dst unchanged). */
int info_list_copy(info_list *dst, const info_list *src);

/* A fURI segment made of name: "/" is "root", a leading '/' is dropped, every other byte
 * that is not [A-Za-z0-9_.-] becomes '_'.  Writes at most size bytes with the NUL. */
void si_segment(const char *name, char *out, size_t size);

#endif
