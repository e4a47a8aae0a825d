/* SPDX-License-Identifier: MIT */
/*
 * The limits table of the broker's configuration: BROKER_LIMITS (config.h) as
 * data, and the relations between its rows.  The YAML loader, the public
 * setters and getters, hyb_broker_new and the documentation test all read
 * these two tables, so a new limit is one row and a new rule one line.
 */
#include <assert.h>
#include <stdio.h>

#include "broker/config-internal.h"
#include "common/util.h"

#define BROKER_LIMIT_MAX_SIZE ((uint64_t)SIZE_MAX)
#define BROKER_LIMIT_MAX_COUNT ((uint64_t)UINT32_MAX)
#define BROKER_LIMIT_MAX_MS ((uint64_t)UINT32_MAX)
#define BROKER_LIMIT_MAX_S ((uint64_t)UINT32_MAX)

/* Every row must fit its field and have its default in range. */
#define LIMIT_ASSERT(name, unit, min, max, dflt, doc)                                              \
        _Static_assert((min) <= (dflt) && (dflt) <= (max) &&                                     \
                               (max) <= BROKER_LIMIT_MAX_##unit,                                   \
                       "limit " #name ": min <= default <= max must fit its type");
BROKER_LIMITS(LIMIT_ASSERT)
#undef LIMIT_ASSERT

#define LIMIT_ROW(name, unit, min, max, dflt, doc)                                                 \
        { #name, offsetof(broker_config, name), sizeof(((broker_config *)0)->name),               \
          BROKER_UNIT_##unit, (min), (max), (dflt), (doc) },
const broker_limit broker_limits[] = { BROKER_LIMITS(LIMIT_ROW) };
#undef LIMIT_ROW
const size_t broker_n_limits = ELEMENTSOF(broker_limits);

const broker_limit_relation broker_limit_relations[] = {
        { "max_frame", "max_body", true, "to leave room for the header" },
        { "send_queue_bytes", "max_frame", false, "to hold one whole frame" },
        { "drop_after_s", "ping_after_s", true, "so that a silent peer is pinged first" },
};
const size_t broker_n_limit_relations = ELEMENTSOF(broker_limit_relations);

const broker_limit *broker_limit_find(const char *name, size_t len)
{
        for (size_t i = 0; i < broker_n_limits; i++)
                if (strlen(broker_limits[i].name) == len &&
                    memcmp(broker_limits[i].name, name, len) == 0)
                        return &broker_limits[i];
        return NULL;
}

uint64_t broker_limit_get(const broker_config *c, const broker_limit *l)
{
        const char *p = (const char *)c + l->offset;

        if (l->width == sizeof(uint32_t)) {
                uint32_t v;

                memcpy(&v, p, sizeof(v));
                return v;
        } else {
                size_t v;

                assert(l->width == sizeof(size_t));
                memcpy(&v, p, sizeof(v));
                return v;
        }
}

void broker_limit_put(broker_config *c, const broker_limit *l, uint64_t v)
{
        char *p = (char *)c + l->offset;

        assert(v >= l->min && v <= l->max);
        if (l->width == sizeof(uint32_t)) {
                uint32_t u = (uint32_t)v;

                memcpy(p, &u, sizeof(u));
        } else {
                size_t s = (size_t)v;

                assert(l->width == sizeof(size_t));
                memcpy(p, &s, sizeof(s));
        }
}

int broker_limit_check(const broker_limit *l, uint64_t v)
{
        return v >= l->min && v <= l->max ? 0 : -ERANGE;
}

const char *broker_limit_unit_name(broker_limit_unit u)
{
        switch (u) {
        case BROKER_UNIT_SIZE:
                return "size";
        case BROKER_UNIT_MS:
                return "ms";
        case BROKER_UNIT_S:
                return "s";
        case BROKER_UNIT_COUNT:
        default:
                return "count";
        }
}

void broker_limit_format(const broker_limit *l, uint64_t v, char *buf, size_t size)
{
        static const struct { uint64_t mult; char suffix; } sfx[] = {
                { CONFIG_GIB, 'G' }, { CONFIG_MIB, 'M' }, { CONFIG_KIB, 'K' },
        };

        if (l->unit == BROKER_UNIT_SIZE)
                for (size_t i = 0; i < ELEMENTSOF(sfx); i++)
                        if (v >= sfx[i].mult && v % sfx[i].mult == 0) {
                                snprintf(buf, size, "%llu%c", (unsigned long long)(v / sfx[i].mult),
                                         sfx[i].suffix);
                                return;
                        }
        snprintf(buf, size, "%llu", (unsigned long long)v);
}

void broker_limit_format_range(const broker_limit *l, char *buf, size_t size)
{
        char lo[32], hi[32];

        broker_limit_format(l, l->min, lo, sizeof(lo));
        broker_limit_format(l, l->max, hi, sizeof(hi));
        snprintf(buf, size, "%s..%s%s", lo, hi,
                 l->unit == BROKER_UNIT_MS ? " ms" : l->unit == BROKER_UNIT_S ? " s" : "");
}

int broker_limits_check_relations(const broker_config *c, char *msg, size_t size)
{
        for (size_t i = 0; i < broker_n_limit_relations; i++) {
                const broker_limit_relation *rel = &broker_limit_relations[i];
                const broker_limit *a = broker_limit_find(rel->a, strlen(rel->a));
                const broker_limit *b = broker_limit_find(rel->b, strlen(rel->b));
                uint64_t va, vb;

                assert(a && b);
                va = broker_limit_get(c, a);
                vb = broker_limit_get(c, b);
                if (rel->strict ? va > vb : va >= vb)
                        continue;
                snprintf(msg, size, "limits.%s (%llu) must be %s limits.%s (%llu) %s", a->name,
                         (unsigned long long)va, rel->strict ? "greater than" : "at least",
                         b->name, (unsigned long long)vb, rel->why);
                return (int)i;
        }
        return -1;
}

int broker_config_validate(const broker_config *c, hyb_error *reterr)
{
        char msg[200];

        for (size_t i = 0; i < broker_n_limits; i++) {
                const broker_limit *l = &broker_limits[i];
                uint64_t v = broker_limit_get(c, l);

                if (broker_limit_check(l, v) < 0) {
                        char range[80];

                        broker_limit_format_range(l, range, sizeof(range));
                        return err_set(reterr, HYB_E_CONFIG, -1,
                                       "limits.%s: %llu is out of range (allowed %s)", l->name,
                                       (unsigned long long)v, range);
                }
        }
        if (broker_limits_check_relations(c, msg, sizeof(msg)) >= 0)
                return err_set(reterr, HYB_E_CONFIG, -1, "%s", msg);
        return 0;
}

void broker_config_frame_follows_body(broker_config *c)
{
        c->max_frame = c->max_body + (size_t)CONFIG_HEADER_ROOM;
}
