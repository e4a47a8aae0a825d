/* SPDX-License-Identifier: MIT */
/*
 * The duplicate filter of the cluster link (dedupe.h): per origin a sliding window of
 * message numbers, origins in a most-recently-used list bounded in count.
 *
 *   d->head -> origin (last used) -> origin -> ... -> origin (oldest; goes first)
 *              hi, bits[16]: bit i of the window is number hi - i
 */
#include <stdlib.h>
#include <string.h>

#include "cluster/dedupe.h"

#define WORDS (CLUSTER_DEDUPE_WINDOW / 64u)

struct origin {
        struct origin *prev, *next;
        uint64_t hi;
        uint64_t bits[WORDS];
        size_t len;
        char name[];
};

struct cluster_dedupe {
        struct origin *head, *tail;
        size_t n;
};

cluster_dedupe *cluster_dedupe_new(void)
{
        return calloc(1, sizeof(cluster_dedupe));
}

cluster_dedupe *cluster_dedupe_free(cluster_dedupe *d)
{
        if (!d)
                return NULL;
        while (d->head) {
                struct origin *o = d->head;
                d->head = o->next;
                free(o);
        }
        free(d);
        return NULL;
}

size_t cluster_dedupe_count(const cluster_dedupe *d)
{
        return d ? d->n : 0;
}

static void unlink_origin(cluster_dedupe *d, struct origin *o)
{
        if (o->prev)
                o->prev->next = o->next;
        else
                d->head = o->next;
        if (o->next)
                o->next->prev = o->prev;
        else
                d->tail = o->prev;
        o->prev = o->next = NULL;
}

static void push_front(cluster_dedupe *d, struct origin *o)
{
        o->next = d->head;
        o->prev = NULL;
        if (d->head)
                d->head->prev = o;
        d->head = o;
        if (!d->tail)
                d->tail = o;
}

static bool bit_get(const struct origin *o, uint64_t i)
{
        return o->bits[i / 64] >> (i % 64) & 1;
}

static void bit_set(struct origin *o, uint64_t i)
{
        o->bits[i / 64] |= (uint64_t)1 << (i % 64);
}

/* Moves the window up by k numbers: bit i becomes bit i + k. */
static void slide(struct origin *o, uint64_t k)
{
        if (k >= CLUSTER_DEDUPE_WINDOW) {
                memset(o->bits, 0, sizeof o->bits);
                return;
        }
        unsigned w = (unsigned)(k / 64), s = (unsigned)(k % 64);
        for (unsigned i = WORDS; i-- > 0;) {
                uint64_t v = 0;
                if (i >= w) {
                        v = o->bits[i - w] << s;
                        if (s && i > w)
                                v |= o->bits[i - w - 1] >> (64 - s);
                }
                o->bits[i] = v;
        }
}

int cluster_dedupe_check(cluster_dedupe *d, const char *origin, size_t len, uint64_t n, bool live)
{
        struct origin *o;

        if (!d || len == 0 || len > CLUSTER_DEDUPE_ORIGIN_MAX)
                return CLUSTER_SEQ_UNKNOWN;
        for (o = d->head; o; o = o->next)
                if (o->len == len && memcmp(o->name, origin, len) == 0)
                        break;
        if (!o) {
                if (d->n >= CLUSTER_DEDUPE_ORIGINS) {
                        o = d->tail; /* the least recently used makes room */
                        unlink_origin(d, o);
                        d->n--;
                } else
                        o = malloc(sizeof *o + CLUSTER_DEDUPE_ORIGIN_MAX + 1);
                if (!o)
                        return CLUSTER_SEQ_UNKNOWN;
                memset(o, 0, sizeof *o);
                memcpy(o->name, origin, len);
                o->name[len] = 0;
                o->len = len;
                o->hi = n;
                bit_set(o, 0);
                push_front(d, o);
                d->n++;
                return CLUSTER_SEQ_NEW;
        }
        if (o != d->head) {
                unlink_origin(d, o);
                push_front(d, o);
        }
        if (n > o->hi) {
                slide(o, n - o->hi);
                o->hi = n;
                bit_set(o, 0);
                return CLUSTER_SEQ_NEW;
        }
        if (live && o->hi - n >= CLUSTER_DEDUPE_RESTART) {
                /* a new run of the origin, its clock set back: start again from n */
                memset(o->bits, 0, sizeof o->bits);
                o->hi = n;
                bit_set(o, 0);
                return CLUSTER_SEQ_NEW;
        }
        if (o->hi - n >= CLUSTER_DEDUPE_WINDOW)
                return CLUSTER_SEQ_UNKNOWN;
        if (bit_get(o, o->hi - n))
                return CLUSTER_SEQ_SEEN;
        bit_set(o, o->hi - n);
        return CLUSTER_SEQ_NEW;
}

bool cluster_dedupe_parse(const char *value, uint64_t *n, const char **origin, size_t *len)
{
        uint64_t v = 0;
        const char *p = value;

        if (!value || *p < '0' || *p > '9')
                return false;
        for (; *p >= '0' && *p <= '9'; p++) {
                if (v > (UINT64_MAX - (uint64_t)(*p - '0')) / 10)
                        return false;
                v = v * 10 + (uint64_t)(*p - '0');
        }
        if (*p != ' ' || !p[1])
                return false;
        *n = v;
        *origin = p + 1;
        *len = strlen(p + 1);
        return true;
}
