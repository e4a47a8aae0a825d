/* SPDX-License-Identifier: MIT */
/* The mapping between the cluster scope and MQTT (map.h, doc/cluster.md). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <mosquitto.h>

#include "cluster/map.h"
#include "common/util.h"

const char *cluster_map_text(const hyb_furi *f)
{
        const char *t = hyb_furi_get_str(f);

        return t[0] == '/' && t[1] == '/' ? t + 2 : NULL;
}

bool cluster_map_reserved(const char *rest)
{
        return strncmp(rest, "_hybrid", 7) == 0 && (rest[7] == '/' || rest[7] == 0);
}

int cluster_map_topic(const char *prefix, const hyb_furi *f, char **ret, hyb_error *e)
{
        const char *rest = cluster_map_text(f), *pre = prefix ? prefix : "";
        size_t rl, pl, tl;
        char *t;

        if (!rest || hyb_furi_get_query(f))
                return err_set(e, -EINVAL, -1, "%s: a cluster fURI has no query here",
                               hyb_furi_get_str(f));
        if (cluster_map_reserved(rest))
                return err_set(e, HYB_E_FORBIDDEN, -1,
                               "%s: _hybrid/ is reserved for hybrid's own traffic",
                               hyb_furi_get_str(f));
        rl = strlen(rest);
        if (hyb_furi_is_branch(f))
                rl--;
        pl = strlen(pre);
        tl = hyb_furi_is_branch(f) ? 2 : 0;
        if (pl + rl + tl > 65535)
                return err_set(e, -EINVAL, -1, "%s: too long for an MQTT topic",
                               hyb_furi_get_str(f));
        t = malloc(pl + rl + tl + 1);
        if (!t)
                return -ENOMEM;
        memcpy(t, pre, pl);
        memcpy(t + pl, rest, rl);
        memcpy(t + pl + rl, "/#", tl);
        t[pl + rl + tl] = 0;
        *ret = t;
        return 0;
}

/* Parses the text pre + s in *ret, joined in buf when it fits, else in a malloc'd copy;
 * with text, *text is that text (free it when it is not buf). */
static int parse_joined(const char *pre, const char *s, char *buf, size_t size, char **text,
                        hyb_furi **ret)
{
        size_t pl = strlen(pre), sl = strlen(s);
        char *t = pl + sl < size ? buf : malloc(pl + sl + 1);
        int r;

        if (!t)
                return -ENOMEM;
        memcpy(t, pre, pl);
        memcpy(t + pl, s, sl + 1);
        r = hyb_furi_parse(t, pl + sl, NULL, ret, NULL);
        if (text)
                *text = t;
        else if (t != buf)
                free(t);
        return r;
}

int cluster_map_mirror_of(const hyb_furi *f, hyb_furi **ret)
{
        const char *rest = cluster_map_text(f);
        char buf[256];

        if (!rest)
                return -EINVAL;
        return parse_joined("/", rest, buf, sizeof buf, NULL, ret);
}

int cluster_map_cluster_of(const hyb_furi *m, hyb_furi **ret)
{
        char buf[256];

        return parse_joined("/", hyb_furi_get_str(m), buf, sizeof buf, NULL, ret);
}

hyb_furi *cluster_map_furi_of_topic(const char *prefix, const char *topic)
{
        const char *pre = prefix ? prefix : "";
        size_t pl = strlen(pre);
        hyb_furi *f = NULL;
        char buf[256], *t = NULL;

        if (strncmp(topic, pre, pl) != 0)
                return NULL;
        topic += pl;
        if (topic[0] == '$' || topic[0] == '/' || !topic[0] || cluster_map_reserved(topic))
                return NULL;
        if (parse_joined("//", topic, buf, sizeof buf, &t, &f) < 0 ||
            hyb_furi_get_scope(f) != HYB_SCOPE_CLUSTER || hyb_furi_is_pattern(f) ||
            hyb_furi_is_branch(f) || strcmp(hyb_furi_get_str(f), t) != 0)
                f = hyb_furi_unref(f);
        if (t && t != buf)
                free(t);
        return f;
}

int cluster_map_remap_keys(const hyb_obj *rec, hyb_obj **ret)
{
        size_t n = hyb_obj_get_len(rec);
        hyb_obj **k = calloc(n + 1, sizeof *k), **v = calloc(n + 1, sizeof *v);
        int r = k && v ? 0 : -ENOMEM;

        for (size_t i = 0; r >= 0 && i < n; i++) {
                const hyb_obj *key = hyb_obj_get_rec_key(rec, i);
                hyb_furi *cf = NULL;

                v[i] = (hyb_obj *)hyb_obj_get_rec_value(rec, i);
                r = hyb_obj_get_kind(key) == HYB_OBJ_URI
                            ? cluster_map_cluster_of(hyb_obj_get_uri(key), &cf)
                            : -EINVAL;
                if (r >= 0)
                        r = hyb_obj_new_uri(cf, &k[i]);
                hyb_furi_unref(cf);
        }
        if (r >= 0)
                r = hyb_obj_new_rec(k, v, n, ret);
        for (size_t i = 0; k && i < n; i++)
                hyb_obj_unref(k[i]);
        free(k);
        free(v);
        return r;
}

int cluster_map_value_of(const void *payload, size_t len, bool retain, hyb_obj **ret)
{
        if (len > CLUSTER_MAX_VALUE_BYTES)
                return HYB_E_LIMIT;
        if (retain && len == 0) {
                *ret = hyb_obj_noobj();
                return 0;
        }
        if (hyb_obj_from_json(payload, len, ret, NULL) >= 0)
                return 0;
        if (mosquitto_validate_utf8(payload, (int)len) != MOSQ_ERR_SUCCESS)
                return -EINVAL;
        return hyb_obj_new_str(payload, len, ret);
}

int cluster_map_payload_of(const hyb_obj *v, char **ret, hyb_error *e)
{
        return hyb_obj_to_json(v, ret, e);
}
