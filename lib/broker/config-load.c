/* SPDX-License-Identifier: MIT */
/*
 * The YAML walker of the broker's configuration.
 *
 *   document --yaml_parser_load--> node tree --walk_map(top)--> broker_config copy
 *                                               |  one table of known keys per mapping:
 *                                               |  top: host listen limits policy log
 *                                               `- limits: max_body ... drop_after_s
 *
 * libyaml's document API gives every node its start mark, so an unknown key, a
 * wrong type or a value out of range is reported with its key path
 * ("limits.max_body") and the 1-based line:column of the offending node.  A
 * load is all-or-nothing: values go to a copy that replaces the caller's
 * struct only once the whole file and the cross-checks between limits passed.
 */
#include <stdio.h>
#include <strings.h>
#include <sys/un.h>

#include "broker/config-internal.h"
#include "bus/names.h"

#include "common/util.h"

#define KIB CONFIG_KIB
#define MIB CONFIG_MIB
#define GIB CONFIG_GIB
#define FRAME_HEADER_ROOM CONFIG_HEADER_ROOM
/* Frame lengths travel as 32-bit numbers; a larger per-peer buffer would be a mistake anyway. */
#define FRAME_MAX ((uint64_t)UINT32_MAX)
#define BODY_MAX (FRAME_MAX - FRAME_HEADER_ROOM)

static const char *const log_levels[] = { "error", "warning", "info", "debug" };

typedef struct loader {
        yaml_document_t *doc;
        broker_config *c;
        hyb_error *reterr;
        /* Nodes of the values that cross-checks refer to (NULL: not in the file). */
        yaml_node_t *max_body, *max_frame, *send_queue, *ping, *drop;
} loader;

typedef struct field field;
typedef int (*field_fn)(loader *l, yaml_node_t *v, const char *path, const field *f);
struct field {
        const char *key;
        field_fn fn;
        size_t off;      /* offsetof the target in broker_config, for the generic handlers */
        uint64_t max;    /* inclusive upper bound for numbers */
        bool size;       /* a size_t with K/M/G suffixes, else a uint32_t count */
};

static int fail(loader *l, const yaml_node_t *n, const char *path, const char *fmt, ...)
        _printf_(4, 5);

static int fail(loader *l, const yaml_node_t *n, const char *path, const char *fmt, ...)
{
        char msg[200];
        int line = (int)n->start_mark.line + 1, col = (int)n->start_mark.column + 1;
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        return err_set_at(l->reterr, HYB_E_CONFIG, (long)n->start_mark.index, line, col,
                          "%s: %s at %d:%d", *path ? path : "config", msg, line, col);
}

static const char *node_kind(const yaml_node_t *n)
{
        switch (n->type) {
        case YAML_SCALAR_NODE:
                return "a scalar";
        case YAML_SEQUENCE_NODE:
                return "a list";
        case YAML_MAPPING_NODE:
                return "a mapping";
        default:
                return "nothing";
        }
}

/* `key:`, `key: ~` and `key: null` (plain, not quoted). */
static bool is_null(const yaml_node_t *n)
{
        const char *s = (const char *)n->data.scalar.value;
        size_t len = n->data.scalar.length;

        if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
                return false;
        return len == 0 || (len == 1 && s[0] == '~') ||
               (len == 4 && strncasecmp(s, "null", 4) == 0);
}

/* A scalar's text, refusing non-scalars, nulls and embedded NUL bytes. */
static int get_string(loader *l, yaml_node_t *v, const char *path, const char *what,
                      const char **ret, size_t *ret_len)
{
        if (v->type != YAML_SCALAR_NODE)
                return fail(l, v, path, "expected %s, got %s", what, node_kind(v));
        if (is_null(v))
                return fail(l, v, path, "expected %s, got nothing", what);
        if (memchr(v->data.scalar.value, '\0', v->data.scalar.length))
                return fail(l, v, path, "NUL byte in %s", what);
        *ret = (const char *)v->data.scalar.value;
        *ret_len = v->data.scalar.length;
        return 0;
}

typedef enum num_status { NUM_OK, NUM_SYNTAX, NUM_NEGATIVE, NUM_RANGE } num_status;

/* Decimal digits, then for sizes an optional K, M or G (any case), optionally followed by "iB". */
static num_status parse_number(const char *s, size_t len, bool size, uint64_t max, uint64_t *ret)
{
        uint64_t v = 0, mult = 1;
        size_t i = 0;

        if (len > 0 && s[0] == '-' && len > 1 && s[1] >= '0' && s[1] <= '9')
                return NUM_NEGATIVE;
        if (len == 0 || s[0] < '0' || s[0] > '9')
                return NUM_SYNTAX;
        for (; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
                unsigned d = (unsigned)(s[i] - '0');

                if (v > (UINT64_MAX - d) / 10)
                        return NUM_RANGE;
                v = v * 10 + d;
        }
        if (size && i < len) {
                switch (s[i]) {
                case 'k': case 'K': mult = KIB; break;
                case 'm': case 'M': mult = MIB; break;
                case 'g': case 'G': mult = GIB; break;
                default: return NUM_SYNTAX;
                }
                i++;
                if (len - i == 2 && s[i] == 'i' && s[i + 1] == 'B')
                        i += 2;
        }
        if (i != len)
                return NUM_SYNTAX;
        if (v > max / mult)
                return NUM_RANGE;
        *ret = v * mult;
        return NUM_OK;
}

static int get_number(loader *l, yaml_node_t *v, const char *path, bool size, uint64_t min,
                      uint64_t max, uint64_t *ret)
{
        const char *what = size ? "a size (integer with optional K/M/G suffix)" :
                                  "a non-negative integer";
        const char *s = NULL;
        size_t len = 0;
        int r;

        r = get_string(l, v, path, what, &s, &len);
        if (r < 0)
                return r;
        switch (parse_number(s, len, size, max, ret)) {
        case NUM_OK:
                break;
        case NUM_SYNTAX:
                return fail(l, v, path, "expected %s, got '%.*s'", what,
                            (int)(len > 40 ? 40 : len), s);
        case NUM_NEGATIVE:
                return fail(l, v, path, "must not be negative");
        case NUM_RANGE:
                return fail(l, v, path, "too large (at most %llu)", (unsigned long long)max);
        }
        if (*ret < min)
                return fail(l, v, path, "must be at least %llu", (unsigned long long)min);
        return 0;
}

static int get_uid(loader *l, yaml_node_t *v, const char *path, uid_t *ret)
{
        const char *s = NULL;
        size_t len = 0;
        uint64_t u;
        int r;

        r = get_string(l, v, path, "a numeric uid", &s, &len);
        if (r < 0)
                return r;
        /* (uid_t)-1 means "no uid" to the kernel: never a valid entry. */
        if (parse_number(s, len, false, (uid_t)-1 - 1, &u) != NUM_OK)
                return fail(l, v, path, "expected a numeric uid (0..%u), got '%.*s'",
                            (unsigned)((uid_t)-1 - 1), (int)(len > 40 ? 40 : len), s);
        *ret = (uid_t)u;
        return 0;
}

static int set_size(loader *l, yaml_node_t *v, const char *path, const field *f)
{
        uint64_t u;
        int r = get_number(l, v, path, true, 1, f->max, &u);

        if (r < 0)
                return r;
        *(size_t *)((char *)l->c + f->off) = (size_t)u;
        return 0;
}

static int set_u32(loader *l, yaml_node_t *v, const char *path, const field *f)
{
        uint64_t u;
        int r = get_number(l, v, path, false, 1, f->max, &u);

        if (r < 0)
                return r;
        *(uint32_t *)((char *)l->c + f->off) = (uint32_t)u;
        return 0;
}

/* Walks a mapping, dispatching each key to its field; unknown and repeated keys are errors. */
static int walk_map(loader *l, yaml_node_t *map, const char *path, const field *fields,
                    size_t n_fields)
{
        if (is_null(map))
                return 0; /* "limits:" with every line commented out */
        if (map->type != YAML_MAPPING_NODE)
                return fail(l, map, path, "expected a mapping, got %s", node_kind(map));

        for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
             p++) {
                yaml_node_t *k = yaml_document_get_node(l->doc, p->key);
                yaml_node_t *v = yaml_document_get_node(l->doc, p->value);
                const field *f = NULL;
                char sub[200];
                int r;

                if (k->type != YAML_SCALAR_NODE)
                        return fail(l, k, path, "keys must be plain strings, got %s",
                                    node_kind(k));
                snprintf(sub, sizeof(sub), "%.120s%s%.*s", path, *path ? "." : "",
                         (int)(k->data.scalar.length > 64 ? 64 : k->data.scalar.length),
                         (const char *)k->data.scalar.value);

                for (size_t i = 0; i < n_fields; i++)
                        if (strlen(fields[i].key) == k->data.scalar.length &&
                            memcmp(fields[i].key, k->data.scalar.value, k->data.scalar.length) == 0)
                                f = &fields[i];
                if (!f)
                        return fail(l, k, sub, "unknown key");
                for (yaml_node_pair_t *q = map->data.mapping.pairs.start; q < p; q++) {
                        yaml_node_t *qk = yaml_document_get_node(l->doc, q->key);

                        if (qk->data.scalar.length == k->data.scalar.length &&
                            memcmp(qk->data.scalar.value, k->data.scalar.value,
                                   k->data.scalar.length) == 0)
                                return fail(l, k, sub, "repeated key");
                }
                r = f->fn(l, v, sub, f);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int set_host(loader *l, yaml_node_t *v, const char *path, const field *f)
{
        hyb_error e;
        const char *s = NULL;
        size_t len = 0;
        char *dup;
        int r;

        r = get_string(l, v, path, "a host name", &s, &len);
        if (r < 0)
                return r;
        hyb_error_clear(&e);
        if (bus_name_check_host(s, len, &e) < 0)
                return fail(l, v, path, "invalid host name '%.*s' (%s)", (int)(len > 64 ? 64 : len),
                            s, e.message);
        dup = strndup_safe(s, len);
        if (!dup)
                return -ENOMEM;
        free(l->c->host);
        l->c->host = dup;
        return 0;
}

static int set_unix(loader *l, yaml_node_t *v, const char *path, const field *f)
{
        const struct sockaddr_un *sun = NULL;
        const char *s = NULL;
        size_t len = 0;
        char *dup = NULL;
        int r;

        if (!is_null(v)) {
                r = get_string(l, v, path, "a socket path", &s, &len);
                if (r < 0)
                        return r;
                if (len >= sizeof(sun->sun_path))
                        return fail(l, v, path, "socket path longer than %zu bytes",
                                    sizeof(sun->sun_path) - 1);
                dup = strndup_safe(s, len);
                if (!dup)
                        return -ENOMEM;
        }
        /* null: back to the default ($XDG_RUNTIME_DIR/hybrid/bus.sock or /run/hybrid/bus.sock). */
        free(l->c->listen_unix);
        l->c->listen_unix = dup;
        return 0;
}

static int set_listen(loader *l, yaml_node_t *v, const char *path, const field *f)
{
        static const field fields[] = {
                { "unix", set_unix, 0, 0, false },
        };

        return walk_map(l, v, path, fields, ELEMENTSOF(fields));
}

/* Sizes and counts, then the nodes later cross-checks point at. */
static int set_limit(loader *l, yaml_node_t *v, const char *path, const field *f)
{
        int r = f->size ? set_size(l, v, path, f) : set_u32(l, v, path, f);

        if (r < 0)
                return r;
        if (f->off == offsetof(broker_config, max_body))
                l->max_body = v;
        else if (f->off == offsetof(broker_config, max_frame))
                l->max_frame = v;
        else if (f->off == offsetof(broker_config, send_queue_bytes))
                l->send_queue = v;
        else if (f->off == offsetof(broker_config, ping_after_s))
                l->ping = v;
        else if (f->off == offsetof(broker_config, drop_after_s))
                l->drop = v;
        return 0;
}

static int set_limits(loader *l, yaml_node_t *v, const char *path, const field *f)
{
#define LIMIT(name, max, size) { #name, set_limit, offsetof(broker_config, name), (max), (size) }
        static const field fields[] = {
                LIMIT(max_body, BODY_MAX, true),
                LIMIT(max_frame, FRAME_MAX, true),
                LIMIT(max_pending_calls, UINT32_MAX, false),
                LIMIT(send_queue_bytes, SIZE_MAX, true),
                LIMIT(max_connections, UINT32_MAX, false),
                LIMIT(max_endpoints, UINT32_MAX, false),
                LIMIT(max_subscriptions, UINT32_MAX, false),
                LIMIT(max_policy_bytes, BODY_MAX, true),
                LIMIT(auth_timeout_ms, UINT32_MAX, false),
                LIMIT(ping_after_s, UINT32_MAX, false),
                LIMIT(drop_after_s, UINT32_MAX, false),
                LIMIT(max_memory, SIZE_MAX, true),
                LIMIT(uid_max_bytes, SIZE_MAX, true),
                LIMIT(uid_max_connections, UINT32_MAX, false),
                LIMIT(uid_max_pending_calls, UINT32_MAX, false),
                LIMIT(uid_max_subscriptions, UINT32_MAX, false),
                LIMIT(uid_max_registrations, UINT32_MAX, false),
                LIMIT(uid_max_policy_bytes, SIZE_MAX, true),
                LIMIT(max_unauth_connections, UINT32_MAX, false),
                LIMIT(uid_max_unauth_connections, UINT32_MAX, false),
        };
#undef LIMIT

        return walk_map(l, v, path, fields, ELEMENTSOF(fields));
}

static int set_admins(loader *l, yaml_node_t *v, const char *path, const field *f)
{
        _cleanup_free_ uid_t *uids = NULL;
        size_t n = 0;

        if (!is_null(v)) {
                if (v->type != YAML_SEQUENCE_NODE)
                        return fail(l, v, path, "expected a list of uids, got %s", node_kind(v));
                n = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
                uids = mallocarray(n, sizeof(uid_t));
                if (!uids)
                        return -ENOMEM;
                for (size_t i = 0; i < n; i++) {
                        yaml_node_t *it = yaml_document_get_node(l->doc,
                                                                 v->data.sequence.items.start[i]);
                        char sub[200];
                        int r;

                        snprintf(sub, sizeof(sub), "%.120s[%zu]", path, i);
                        r = get_uid(l, it, sub, &uids[i]);
                        if (r < 0)
                                return r;
                }
        }
        /* A list in the file replaces the previous one. */
        free(l->c->admins);
        l->c->admins = n ? TAKE_PTR(uids) : NULL;
        l->c->n_admins = n;
        return 0;
}

/* An app-name glob: what app names are made of, plus '*' and '?'. */
static int check_app_glob(loader *l, yaml_node_t *v, const char *path, const char *s, size_t len)
{
        if (len == 0)
                return fail(l, v, path, "empty app-name glob");
        for (size_t i = 0; i < len; i++) {
                char c = s[i];

                if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                      c == '_' || c == '.' || c == '*' || c == '?'))
                        return fail(l, v, path, "invalid character '%c' in app-name glob '%.*s'",
                                    c, (int)(len > 64 ? 64 : len), s);
        }
        return 0;
}

static int load_app_entry(loader *l, yaml_node_t *k, yaml_node_t *v, const char *path,
                          broker_app_policy *a)
{
        size_t n;
        int r;

        r = get_uid(l, k, path, &a->uid);
        if (r < 0)
                return r;
        if (v->type != YAML_SEQUENCE_NODE)
                return fail(l, v, path, "expected a list of app-name globs, got %s",
                            node_kind(v));
        n = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
        a->globs = calloc(n + 1, sizeof(char *));
        if (!a->globs)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                yaml_node_t *it = yaml_document_get_node(l->doc, v->data.sequence.items.start[i]);
                char sub[200];
                const char *s = NULL;
                size_t len = 0;

                snprintf(sub, sizeof(sub), "%.120s[%zu]", path, i);
                r = get_string(l, it, sub, "an app-name glob", &s, &len);
                if (r < 0)
                        return r;
                r = check_app_glob(l, it, sub, s, len);
                if (r < 0)
                        return r;
                a->globs[i] = strndup_safe(s, len);
                if (!a->globs[i])
                        return -ENOMEM;
                a->n_globs = i + 1;
        }
        return 0;
}

static int set_apps(loader *l, yaml_node_t *v, const char *path, const field *f)
{
        broker_app_policy *apps = NULL;
        size_t n = 0;
        int r = 0;

        if (!is_null(v)) {
                yaml_node_pair_t *p0;

                if (v->type != YAML_MAPPING_NODE)
                        return fail(l, v, path, "expected a mapping of uid to app-name globs, "
                                    "got %s", node_kind(v));
                p0 = v->data.mapping.pairs.start;
                n = (size_t)(v->data.mapping.pairs.top - p0);
                apps = calloc(n ? n : 1, sizeof(*apps));
                if (!apps)
                        return -ENOMEM;
                for (size_t i = 0; i < n && r >= 0; i++) {
                        yaml_node_t *k = yaml_document_get_node(l->doc, p0[i].key);
                        yaml_node_t *val = yaml_document_get_node(l->doc, p0[i].value);
                        char sub[200];

                        snprintf(sub, sizeof(sub), "%.120s.%.*s", path,
                                 k->type == YAML_SCALAR_NODE ?
                                         (int)(k->data.scalar.length > 40 ? 40 :
                                                                           k->data.scalar.length) :
                                         0,
                                 k->type == YAML_SCALAR_NODE ? (const char *)k->data.scalar.value :
                                                               "");
                        r = load_app_entry(l, k, val, sub, &apps[i]);
                        /* "1000" and 1000 are the same uid: one entry per uid. */
                        for (size_t j = 0; j < i && r >= 0; j++)
                                if (apps[j].uid == apps[i].uid)
                                        r = fail(l, k, sub, "repeated uid %u",
                                                 (unsigned)apps[i].uid);
                }
                if (r < 0) {
                        broker_config_free_apps(apps, n);
                        return r;
                }
        }
        broker_config_free_apps(l->c->apps, l->c->n_apps);
        l->c->apps = n ? apps : NULL;
        l->c->n_apps = n;
        if (!n)
                free(apps);
        return 0;
}

static int set_policy(loader *l, yaml_node_t *v, const char *path, const field *f)
{
        static const field fields[] = {
                { "admins", set_admins, 0, 0, false },
                { "apps", set_apps, 0, 0, false },
        };

        return walk_map(l, v, path, fields, ELEMENTSOF(fields));
}

static int set_level(loader *l, yaml_node_t *v, const char *path, const field *f)
{
        const char *s = NULL;
        size_t len = 0;
        int r;

        r = get_string(l, v, path, "a log level", &s, &len);
        if (r < 0)
                return r;
        for (size_t i = 0; i < ELEMENTSOF(log_levels); i++)
                if (bus_name_equal(s, len, log_levels[i], strlen(log_levels[i]))) {
                        char *dup = strdup(log_levels[i]);

                        if (!dup)
                                return -ENOMEM;
                        free(l->c->log_level);
                        l->c->log_level = dup;
                        return 0;
                }
        return fail(l, v, path, "expected error, warning, info or debug, got '%.*s'",
                    (int)(len > 40 ? 40 : len), s);
}

static int set_syslog(loader *l, yaml_node_t *v, const char *path, const field *f)
{
        /* YAML 1.1 booleans, as libyaml users write them. */
        static const char *const yes[] = { "true", "yes", "on" };
        static const char *const no[] = { "false", "no", "off" };
        const char *s = NULL;
        size_t len = 0;
        int r;

        r = get_string(l, v, path, "true or false", &s, &len);
        if (r < 0)
                return r;
        for (size_t i = 0; i < ELEMENTSOF(yes); i++) {
                if (bus_name_equal(s, len, yes[i], strlen(yes[i]))) {
                        l->c->log_syslog = true;
                        return 0;
                }
                if (bus_name_equal(s, len, no[i], strlen(no[i]))) {
                        l->c->log_syslog = false;
                        return 0;
                }
        }
        return fail(l, v, path, "expected true or false, got '%.*s'", (int)(len > 40 ? 40 : len),
                    s);
}

static int set_log(loader *l, yaml_node_t *v, const char *path, const field *f)
{
        static const field fields[] = {
                { "level", set_level, 0, 0, false },
                { "syslog", set_syslog, 0, 0, false },
        };

        return walk_map(l, v, path, fields, ELEMENTSOF(fields));
}

/* Relations between limits, checked once the whole file is in. */
static int cross_check(loader *l)
{
        broker_config *c = l->c;

        if (l->max_body && !l->max_frame) {
                /* Only the body limit given: the frame limit follows it (spec: body + header). */
                c->max_frame = c->max_body + FRAME_HEADER_ROOM;
        }
        if (c->max_frame <= c->max_body) {
                yaml_node_t *n = l->max_frame ? l->max_frame : l->max_body;

                return fail(l, n, l->max_frame ? "limits.max_frame" : "limits.max_body",
                            "limits.max_frame (%zu) must be greater than limits.max_body (%zu) "
                            "to leave room for the header",
                            c->max_frame, c->max_body);
        }
        if (c->send_queue_bytes < c->max_frame && (l->send_queue || l->max_frame || l->max_body)) {
                yaml_node_t *n = l->send_queue ? l->send_queue :
                                 l->max_frame  ? l->max_frame :
                                                 l->max_body;
                const char *p = l->send_queue ? "limits.send_queue_bytes" :
                                l->max_frame  ? "limits.max_frame" :
                                                "limits.max_body";

                return fail(l, n, p,
                            "limits.send_queue_bytes (%zu) must hold at least one frame of "
                            "limits.max_frame (%zu)",
                            c->send_queue_bytes, c->max_frame);
        }
        if (c->drop_after_s <= c->ping_after_s && (l->drop || l->ping))
                return fail(l, l->drop ? l->drop : l->ping,
                            l->drop ? "limits.drop_after_s" : "limits.ping_after_s",
                            "limits.drop_after_s (%u) must be greater than "
                            "limits.ping_after_s (%u)",
                            c->drop_after_s, c->ping_after_s);
        return 0;
}

int broker_config_parse(broker_config *c, yaml_parser_t *parser, hyb_error *reterr)
{
        static const field top[] = {
                { "host", set_host, 0, 0, false },
                { "listen", set_listen, 0, 0, false },
                { "limits", set_limits, 0, 0, false },
                { "policy", set_policy, 0, 0, false },
                { "log", set_log, 0, 0, false },
        };
        broker_config tmp;
        yaml_document_t doc, extra;
        yaml_node_t *root;
        loader l = { .reterr = reterr };
        int r;

        if (!yaml_parser_load(parser, &doc)) {
                int line = (int)parser->problem_mark.line + 1;
                int col = (int)parser->problem_mark.column + 1;

                if (parser->error == YAML_MEMORY_ERROR)
                        return -ENOMEM;
                return err_set_at(reterr, HYB_E_CONFIG, (long)parser->problem_mark.index, line,
                                  col, "YAML syntax error: %s%s%s at %d:%d",
                                  parser->problem ? parser->problem : "unknown",
                                  parser->context ? " " : "",
                                  parser->context ? parser->context : "", line, col);
        }

        root = yaml_document_get_root_node(&doc);
        if (!root) {
                /* Empty file (or only comments): keep every value. */
                yaml_document_delete(&doc);
                return 0;
        }

        r = broker_config_copy(&tmp, c);
        if (r < 0) {
                yaml_document_delete(&doc);
                return r;
        }
        l.doc = &doc;
        l.c = &tmp;
        r = walk_map(&l, root, "", top, ELEMENTSOF(top));
        if (r >= 0)
                r = cross_check(&l);

        if (r >= 0) {
                /* A second document would be silently ignored: refuse it. */
                if (!yaml_parser_load(parser, &extra)) {
                        r = err_set_at(reterr, HYB_E_CONFIG, (long)parser->problem_mark.index,
                                       (int)parser->problem_mark.line + 1,
                                       (int)parser->problem_mark.column + 1,
                                       "YAML syntax error: %s at %d:%d",
                                       parser->problem ? parser->problem : "unknown",
                                       (int)parser->problem_mark.line + 1,
                                       (int)parser->problem_mark.column + 1);
                } else {
                        yaml_node_t *x = yaml_document_get_root_node(&extra);

                        if (x) {
                                l.doc = &extra;
                                r = fail(&l, x, "", "only one YAML document is allowed");
                        }
                        yaml_document_delete(&extra);
                }
        }
        yaml_document_delete(&doc);

        if (r < 0) {
                broker_config_clear(&tmp);
                return r;
        }
        broker_config_clear(c);
        *c = tmp;
        return 0;
}
