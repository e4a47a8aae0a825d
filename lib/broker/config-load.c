/* SPDX-License-Identifier: MIT */
/*
 * The YAML loader of the broker's configuration: a recursive descent over
 * libyaml's event stream (no document tree), so the cost is linear in the
 * input and the first error stops the parse where it stands.
 *
 *   yaml_parser_parse --event--> walk_map(top) --one table of keys per mapping-->
 *        |                           top: host listen limits policy log
 *        |                           limits: the rows of BROKER_LIMITS
 *        `- depth bound (CONFIG_MAX_DEPTH), input bound (CONFIG_MAX_BYTES)
 *
 * Every event carries its start mark, so an unknown key, a wrong type or a
 * value out of range is reported with its key path ("limits.max_body") and the
 * 1-based line:column of the offending node.  A load is all-or-nothing: values
 * go to a copy that replaces the caller's struct only once the whole file and
 * the relations between limits passed.
 */
#include <assert.h>
#include <stdio.h>
#include <strings.h>
#include <sys/un.h>

#include <event2/util.h>

#include "broker/config-internal.h"
#include "bus/names.h"
#include "hybrid/furi.h"

#include "common/util.h"

#define COUNT_ONE(...) +1
enum { N_LIMITS = 0 BROKER_LIMITS(COUNT_ONE) };
#undef COUNT_ONE

static const char *const log_levels[] = { "error", "warning", "info", "debug" };

struct loader {
        yaml_parser_t *parser;
        const bool *too_big;
        yaml_event_t ev;   /* the current event, owned while have_ev */
        bool have_ev;
        unsigned depth;
        broker_config *c;
        hyb_error *reterr;
        /* Limits given in this file: where, and under which key to blame them. */
        bool limit_seen[N_LIMITS];
        yaml_mark_t limit_mark[N_LIMITS];
        const char *limit_blame[N_LIMITS];
        void *user; /* loader_user() */
        broker_store_rule *rule; /* the policy.store rule being read */
};

static int fail(loader *l, yaml_mark_t m, const char *path, const char *fmt, ...) _printf_(4, 5);

static int fail(loader *l, yaml_mark_t m, const char *path, const char *fmt, ...)
{
        char msg[200];
        int line = (int)m.line + 1, col = (int)m.column + 1;
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        return err_set_at(l->reterr, HYB_E_CONFIG, (long)m.index, line, col, "%s: %s at %d:%d",
                          *path ? path : "config", msg, line, col);
}

/* Advances to the next event, bounding the nesting depth. */
static int next(loader *l)
{
        yaml_parser_t *p = l->parser;

        if (l->have_ev)
                yaml_event_delete(&l->ev);
        l->have_ev = false;
        if (!yaml_parser_parse(p, &l->ev)) {
                int line = (int)p->problem_mark.line + 1, col = (int)p->problem_mark.column + 1;

                if (p->error == YAML_MEMORY_ERROR)
                        return -ENOMEM;
                if (l->too_big && *l->too_big)
                        return err_set(l->reterr, HYB_E_CONFIG, CONFIG_MAX_BYTES,
                                       "config: larger than %d bytes", CONFIG_MAX_BYTES);
                if (p->error == YAML_READER_ERROR)
                        /* Encoding errors: libyaml knows the byte, not the line. */
                        return err_set(l->reterr, HYB_E_CONFIG, (long)p->problem_offset,
                                       "config: %s at byte %zu",
                                       p->problem ? p->problem : "read error", p->problem_offset);
                return err_set_at(l->reterr, HYB_E_CONFIG, (long)p->problem_mark.index, line, col,
                                  "config: YAML syntax error: %s%s%s at %d:%d",
                                  p->problem ? p->problem : "unknown", p->context ? " " : "",
                                  p->context ? p->context : "", line, col);
        }
        l->have_ev = true;
        switch (l->ev.type) {
        case YAML_SEQUENCE_START_EVENT:
        case YAML_MAPPING_START_EVENT:
                if (++l->depth > CONFIG_MAX_DEPTH)
                        return fail(l, l->ev.start_mark, "config", "nested deeper than %d levels",
                                    CONFIG_MAX_DEPTH);
                break;
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT:
                l->depth--;
                break;
        case YAML_ALIAS_EVENT:
                return fail(l, l->ev.start_mark, "config", "YAML aliases (*%s) are not supported",
                            (const char *)l->ev.data.alias.anchor);
        default:
                break;
        }
        return 0;
}

static const char *ev_kind(const yaml_event_t *e)
{
        switch (e->type) {
        case YAML_SCALAR_EVENT:
                return "a scalar";
        case YAML_SEQUENCE_START_EVENT:
                return "a list";
        case YAML_MAPPING_START_EVENT:
                return "a mapping";
        default:
                return "nothing";
        }
}

/* `key:`, `key: ~` and `key: null` (plain, not quoted). */
static bool is_null(const yaml_event_t *e)
{
        const char *s;
        size_t len;

        if (e->type != YAML_SCALAR_EVENT || e->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
                return false;
        s = (const char *)e->data.scalar.value;
        len = e->data.scalar.length;
        return len == 0 || (len == 1 && s[0] == '~') ||
               (len == 4 && strncasecmp(s, "null", 4) == 0);
}

/* The current scalar's text, refusing collections, nulls and embedded NUL bytes. */
static int get_string(loader *l, const char *path, const char *what, const char **ret,
                      size_t *ret_len)
{
        const yaml_event_t *e = &l->ev;

        if (e->type != YAML_SCALAR_EVENT)
                return fail(l, e->start_mark, path, "expected %s, got %s", what, ev_kind(e));
        if (is_null(e))
                return fail(l, e->start_mark, path, "expected %s, got nothing", what);
        if (memchr(e->data.scalar.value, '\0', e->data.scalar.length))
                return fail(l, e->start_mark, path, "NUL byte in %s", what);
        *ret = (const char *)e->data.scalar.value;
        *ret_len = e->data.scalar.length;
        return 0;
}

/*
 * One word of names[0..n) (ASCII case ignored) into *ret_index; anything else is an error
 * "expected a, b or c, got 'x'" at the value.  what names the value for get_string.
 */
static int get_choice(loader *l, const char *path, const char *what, const char *const *names,
                      size_t n, size_t *ret_index)
{
        char list[160];
        const char *s = NULL;
        size_t len = 0, used = 0;
        int r;

        r = get_string(l, path, what, &s, &len);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++)
                if (bus_name_equal(s, len, names[i], strlen(names[i]))) {
                        *ret_index = i;
                        return 0;
                }
        list[0] = '\0';
        for (size_t i = 0; i < n && used < sizeof(list); i++)
                used += (size_t)snprintf(list + used, sizeof(list) - used, "%s%s",
                                         i == 0 ? "" : i + 1 == n ? " or " : ", ", names[i]);
        return fail(l, l->ev.start_mark, path, "expected %s, got '%.*s'", list,
                    (int)(len > 40 ? 40 : len), s);
}

/* Levenshtein distance of two short strings (keys are at most 64 bytes here). */
static size_t edit_distance(const char *a, size_t na, const char *b, size_t nb)
{
        size_t row[65];

        assert(nb < ELEMENTSOF(row));
        for (size_t j = 0; j <= nb; j++)
                row[j] = j;
        for (size_t i = 1; i <= na; i++) {
                size_t diag = row[0];

                row[0] = i;
                for (size_t j = 1; j <= nb; j++) {
                        size_t up = row[j];
                        size_t best = diag + (a[i - 1] != b[j - 1]);

                        if (up + 1 < best)
                                best = up + 1;
                        if (row[j - 1] + 1 < best)
                                best = row[j - 1] + 1;
                        row[j] = best;
                        diag = up;
                }
        }
        return row[nb];
}

/* The known key closest to key (at most 2 edits, or a third of the longer one), or NULL. */
static const char *suggest(const char *key, size_t len, const field *fields, size_t n_fields)
{
        const char *best = NULL;
        size_t best_d = SIZE_MAX;

        if (len > 64)
                return NULL;
        for (size_t i = 0; i < n_fields; i++) {
                size_t n = strlen(fields[i].key), d;

                if (n > 64)
                        continue;
                d = edit_distance(key, len, fields[i].key, n);
                if (d < best_d && (d <= 2 || d * 3 <= (len > n ? len : n))) {
                        best = fields[i].key;
                        best_d = d;
                }
        }
        return best;
}

/* Walks the mapping starting at the current event; unknown and repeated keys are errors. */
static int walk_map(loader *l, const char *path, const field *fields, size_t n_fields)
{
        uint64_t seen = 0;

        assert(n_fields <= 64);
        if (is_null(&l->ev))
                return 0; /* "limits:" with every line commented out */
        if (l->ev.type != YAML_MAPPING_START_EVENT)
                return fail(l, l->ev.start_mark, path, "expected a mapping, got %s",
                            ev_kind(&l->ev));

        for (;;) {
                const field *f = NULL;
                const char *key, *hint;
                size_t klen, i;
                char sub[200];
                int r;

                r = next(l);
                if (r < 0)
                        return r;
                if (l->ev.type == YAML_MAPPING_END_EVENT)
                        return 0;
                if (l->ev.type != YAML_SCALAR_EVENT)
                        return fail(l, l->ev.start_mark, path, "keys must be plain strings, got %s",
                                    ev_kind(&l->ev));
                key = (const char *)l->ev.data.scalar.value;
                klen = l->ev.data.scalar.length;
                snprintf(sub, sizeof(sub), "%.120s%s%.*s", path, *path ? "." : "",
                         (int)(klen > 64 ? 64 : klen), key);

                for (i = 0; i < n_fields; i++)
                        if (strlen(fields[i].key) == klen &&
                            memcmp(fields[i].key, key, klen) == 0) {
                                f = &fields[i];
                                break;
                        }
                if (!f) {
                        hint = suggest(key, klen, fields, n_fields);
                        if (hint)
                                return fail(l, l->ev.start_mark, sub,
                                            "unknown key, did you mean %s?", hint);
                        return fail(l, l->ev.start_mark, sub, "unknown key");
                }
                if (seen & ((uint64_t)1 << i))
                        return fail(l, l->ev.start_mark, sub, "repeated key");
                seen |= (uint64_t)1 << i;
                r = next(l);
                if (r < 0)
                        return r;
                r = f->fn(l, sub, f);
                if (r < 0)
                        return r;
        }
}

typedef enum num_status { NUM_OK, NUM_SYNTAX, NUM_NEGATIVE, NUM_RANGE } num_status;

/* Decimal digits, then for sizes an optional K, M or G (any case), optionally followed by "iB". */
static num_status parse_number(const char *s, size_t len, bool size, uint64_t *ret)
{
        uint64_t v = 0, mult = 1;
        size_t i = 0;

        if (len > 1 && s[0] == '-' && s[1] >= '0' && s[1] <= '9')
                return NUM_NEGATIVE;
        if (len == 0 || s[0] < '0' || s[0] > '9')
                return NUM_SYNTAX;
        for (; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
                unsigned d = (unsigned)(s[i] - '0');

                if (v > (UINT64_MAX - d) / 10)
                        v = UINT64_MAX; /* keep scanning: the syntax decides first */
                else
                        v = v * 10 + d;
        }
        if (size && i < len) {
                switch (s[i]) {
                case 'k': case 'K': mult = CONFIG_KIB; break;
                case 'm': case 'M': mult = CONFIG_MIB; break;
                case 'g': case 'G': mult = CONFIG_GIB; break;
                default: return NUM_SYNTAX;
                }
                i++;
                if (len - i == 2 && s[i] == 'i' && s[i + 1] == 'B')
                        i += 2;
        }
        if (i != len)
                return NUM_SYNTAX;
        if (v == UINT64_MAX || v > UINT64_MAX / mult)
                return NUM_RANGE;
        *ret = v * mult;
        return NUM_OK;
}

static int get_uid(loader *l, const char *path, uid_t *ret)
{
        const char *s = NULL;
        size_t len = 0;
        uint64_t u = 0;
        int r;

        r = get_string(l, path, "a numeric uid", &s, &len);
        if (r < 0)
                return r;
        /* (uid_t)-1 means "no uid" to the kernel: never a valid entry. */
        if (parse_number(s, len, false, &u) != NUM_OK || u >= (uid_t)-1)
                return fail(l, l->ev.start_mark, path,
                            "expected a numeric uid (0..%u), got '%.*s'",
                            (unsigned)((uid_t)-1 - 1), (int)(len > 40 ? 40 : len), s);
        *ret = (uid_t)u;
        return 0;
}

/* A value of one row of the limits table, range-checked against that row. */
static int set_limit(loader *l, const char *path, const field *f)
{
        const broker_limit *row = broker_limit_find(f->key, strlen(f->key));
        bool size = row->unit == BROKER_UNIT_SIZE;
        const char *what = size ? "a size (integer with optional K/M/G suffix)" :
                                  "a non-negative integer";
        char range[80];
        const char *s = NULL;
        size_t len = 0, idx = (size_t)(row - broker_limits);
        uint64_t v = 0;
        num_status st;
        int r;

        r = get_string(l, path, what, &s, &len);
        if (r < 0)
                return r;
        st = parse_number(s, len, size, &v);
        if (st == NUM_SYNTAX)
                return fail(l, l->ev.start_mark, path, "expected %s, got '%.*s'", what,
                            (int)(len > 40 ? 40 : len), s);
        if (st != NUM_OK || broker_limit_check(row, v) < 0) {
                broker_limit_format_range(row, range, sizeof(range));
                return fail(l, l->ev.start_mark, path, "'%.*s' is out of range (allowed %s)",
                            (int)(len > 40 ? 40 : len), s, range);
        }
        broker_limit_put(l->c, row, v);
        l->limit_seen[idx] = true;
        l->limit_mark[idx] = l->ev.start_mark;
        l->limit_blame[idx] = row->name;
        return 0;
}

static int set_host(loader *l, const char *path, const field *f)
{
        hyb_error e;
        const char *s = NULL;
        size_t len = 0;
        char *dup;
        int r;

        r = get_string(l, path, "a host name", &s, &len);
        if (r < 0)
                return r;
        hyb_error_clear(&e);
        if (bus_name_check_host(s, len, &e) < 0)
                return fail(l, l->ev.start_mark, path, "invalid host name '%.*s' (%s)",
                            (int)(len > 64 ? 64 : len), s, e.message);
        dup = strndup_safe(s, len);
        if (!dup)
                return -ENOMEM;
        free(l->c->host);
        l->c->host = dup;
        return 0;
}

static int set_unix(loader *l, const char *path, const field *f)
{
        const struct sockaddr_un *sun = NULL;
        const char *s = NULL;
        size_t len = 0;
        char *dup = NULL;
        int r;

        if (!is_null(&l->ev)) {
                r = get_string(l, path, "a socket path", &s, &len);
                if (r < 0)
                        return r;
                if (len >= sizeof(sun->sun_path))
                        return fail(l, l->ev.start_mark, path, "socket path longer than %zu bytes",
                                    sizeof(sun->sun_path) - 1);
                dup = strndup_safe(s, len);
                if (!dup)
                        return -ENOMEM;
        }
        /* null: back to the default. */
        free(l->c->listen_unix);
        l->c->listen_unix = dup;
        return 0;
}

int broker_parse_hostport(const char *spec, struct sockaddr_storage *ss, int *len)
{
        const char *colon = strrchr(spec, ':');
        char tmp[128];
        bool zero = colon && strcmp(colon, ":0") == 0;
        int r;

        if (!colon || strlen(spec) >= sizeof tmp)
                return -EINVAL;
        /* libevent refuses port 0, which asks the kernel for a free port: parse it as 1 */
        snprintf(tmp, sizeof tmp, "%.*s%s", (int)(colon - spec), spec, zero ? ":1" : colon);
        r = evutil_parse_sockaddr_port(tmp, (struct sockaddr *)ss, len);
        if (r < 0)
                return -EINVAL;
        if (zero && ss->ss_family == AF_INET)
                ((struct sockaddr_in *)ss)->sin_port = 0;
        else if (zero)
                ((struct sockaddr_in6 *)ss)->sin6_port = 0;
        return 0;
}

/* listen.http and listen.coap: HOST:PORT (an IPv4 address, or an IPv6 one in brackets), or
 * null (none), into *slot. */
static int set_hostport(loader *l, const char *path, char **slot)
{
        struct sockaddr_storage ss;
        int ss_len = (int)sizeof ss;
        const char *s = NULL;
        size_t len = 0;
        char *dup = NULL;
        int r;

        if (!is_null(&l->ev)) {
                r = get_string(l, path, "HOST:PORT", &s, &len);
                if (r < 0)
                        return r;
                dup = strndup_safe(s, len);
                if (!dup)
                        return -ENOMEM;
                if (strlen(dup) != len || broker_parse_hostport(dup, &ss, &ss_len) < 0) {
                        free(dup);
                        return fail(l, l->ev.start_mark, path,
                                    "expected HOST:PORT with a numeric address ('127.0.0.1:8080', '[::1]:8080')");
                }
        }
        /* null: no listener. */
        free(*slot);
        *slot = dup;
        return 0;
}

static int set_http(loader *l, const char *path, const field *f)
{
        (void)f;
        return set_hostport(l, path, &l->c->listen_http);
}

static int set_coap(loader *l, const char *path, const field *f)
{
        (void)f;
        return set_hostport(l, path, &l->c->listen_coap);
}

static int set_listen(loader *l, const char *path, const field *f)
{
        static const field fields[] = {
                { "unix", set_unix },
                { "http", set_http },
                { "https", broker_config_set_listen_https },
                { "coap", set_coap },
        };

        return walk_map(l, path, fields, ELEMENTSOF(fields));
}

static int set_limits(loader *l, const char *path, const field *f)
{
#define LIMIT_FIELD(name, ...) { #name, set_limit },
        static const field fields[] = { BROKER_LIMITS(LIMIT_FIELD) };
#undef LIMIT_FIELD
        _Static_assert(ELEMENTSOF(fields) <= 64, "walk_map tracks at most 64 keys");

        return walk_map(l, path, fields, ELEMENTSOF(fields));
}

/* Walks the list starting at the current event; item(l, path_of_item, i, ud) per element. */
static int walk_list(loader *l, const char *path, const char *what,
                     int (*item)(loader *l, const char *path, size_t i, void *ud), void *ud)
{
        if (l->ev.type != YAML_SEQUENCE_START_EVENT)
                return fail(l, l->ev.start_mark, path, "expected %s, got %s", what,
                            ev_kind(&l->ev));
        for (size_t i = 0;; i++) {
                char sub[200];
                int r = next(l);

                if (r < 0)
                        return r;
                if (l->ev.type == YAML_SEQUENCE_END_EVENT)
                        return 0;
                snprintf(sub, sizeof(sub), "%.120s[%zu]", path, i);
                r = item(l, sub, i, ud);
                if (r < 0)
                        return r;
        }
}

typedef struct uid_list {
        uid_t *v;
        size_t n, cap;
} uid_list;

static int admin_item(loader *l, const char *path, size_t i, void *ud)
{
        uid_list *u = ud;
        int r;

        if (u->n == u->cap) {
                size_t cap = u->cap ? 2 * u->cap : 16;
                uid_t *v = reallocarray_safe(u->v, cap, sizeof(uid_t));

                if (!v)
                        return -ENOMEM;
                u->v = v;
                u->cap = cap;
        }
        r = get_uid(l, path, &u->v[u->n]);
        if (r < 0)
                return r;
        u->n++;
        return 0;
}

static int set_admins(loader *l, const char *path, const field *f)
{
        uid_list u = { 0 };

        if (!is_null(&l->ev)) {
                int r = walk_list(l, path, "a list of uids", admin_item, &u);

                if (r < 0) {
                        free(u.v);
                        return r;
                }
        }
        /* A list in the file replaces the previous one. */
        free(l->c->admins);
        l->c->admins = u.n ? u.v : NULL;
        l->c->n_admins = u.n;
        if (!u.n)
                free(u.v);
        return 0;
}

typedef struct str_list {
        char **v;
        size_t n, cap;
} str_list;

static void str_list_free(str_list *sl)
{
        for (size_t i = 0; i < sl->n; i++)
                free(sl->v[i]);
        free(sl->v);
}

/* One edge.anonymous route pattern: a fURI (pattern) under /bus/, /store/, /events/ or /watch/. */
static int route_item(loader *l, const char *path, size_t i, void *ud)
{
        static const char *const roots[] = { "/bus/", "/store/", "/events/", "/watch/" };
        str_list *sl = ud;
        const char *s;
        size_t len;
        hyb_furi *fu = NULL;
        bool root = false;
        char *dup;
        int r;

        r = get_string(l, path, "a route pattern", &s, &len);
        if (r < 0)
                return r;
        for (size_t k = 0; k < ELEMENTSOF(roots); k++)
                if (len > strlen(roots[k]) && strncmp(s, roots[k], strlen(roots[k])) == 0)
                        root = true;
        if (!root || memchr(s, 0, len) || hyb_furi_parse(s, len, NULL, &fu, NULL) < 0)
                return fail(l, l->ev.start_mark, path,
                            "expected a route pattern under /bus/, /store/, /events/ or /watch/ "
                            "(a fURI pattern such as \"/store/public/#\")");
        hyb_furi_unref(fu);
        if (sl->n == sl->cap) {
                size_t cap = sl->cap ? 2 * sl->cap : 8;
                char **v = reallocarray_safe(sl->v, cap, sizeof(char *));

                if (!v)
                        return -ENOMEM;
                sl->v = v;
                sl->cap = cap;
        }
        dup = strndup_safe(s, len);
        if (!dup)
                return -ENOMEM;
        sl->v[sl->n++] = dup;
        return 0;
}

static int set_anonymous(loader *l, const char *path, const field *f)
{
        str_list sl = { 0 };

        if (!is_null(&l->ev)) {
                int r = walk_list(l, path, "a list of route patterns", route_item, &sl);

                if (r < 0) {
                        str_list_free(&sl);
                        return r;
                }
        }
        /* A list in the file replaces the previous one (its patterns parsed once, here) */
        if (broker_config_set_anonymous(l->c, sl.v, sl.n) < 0) {
                str_list_free(&sl);
                return -ENOMEM; /* route_item parsed each already */
        }
        return 0;
}

/* YAML 1.1 booleans, as libyaml users write them: true, yes, on / false, no, off. */
static int get_bool(loader *l, const char *path, bool *ret)
{
        static const char *const names[] = { "false", "no", "off", "true", "yes", "on" };
        size_t i = 0;
        int r = get_choice(l, path, "true or false", names, ELEMENTSOF(names), &i);

        if (r < 0)
                return r;
        *ret = i >= 3;
        return 0;
}

static int set_ws_plain_remote(loader *l, const char *path, const field *f)
{
        return get_bool(l, path, &l->c->edge_ws_plain_remote);
}

static int set_edge(loader *l, const char *path, const field *f)
{
        static const field fields[] = {
                { "anonymous", set_anonymous },
                { "ws_plain_remote", set_ws_plain_remote },
        };

        return walk_map(l, path, fields, ELEMENTSOF(fields));
}

/* An app-name glob: what app names are made of, plus '*' and '?'; not empty. */
static int get_app_glob(loader *l, const char *path, const char **ret, size_t *ret_len)
{
        const char *s = NULL;
        size_t len = 0;
        int r;

        r = get_string(l, path, "an app-name glob", &s, &len);
        if (r < 0)
                return r;
        if (len == 0)
                return fail(l, l->ev.start_mark, path, "empty app-name glob");
        for (size_t k = 0; k < len; k++) {
                char c = s[k];

                if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                      c == '_' || c == '.' || c == '*' || c == '?'))
                        return fail(l, l->ev.start_mark, path,
                                    "invalid character '%c' in app-name glob '%.*s'", c,
                                    (int)(len > 64 ? 64 : len), s);
        }
        *ret = s;
        *ret_len = len;
        return 0;
}

/* One entry of a policy.apps list. */
static int glob_item(loader *l, const char *path, size_t i, void *ud)
{
        broker_app_policy *a = ud;
        const char *s = NULL;
        size_t len = 0;
        char **g;
        int r;

        r = get_app_glob(l, path, &s, &len);
        if (r < 0)
                return r;
        /* Grow by powers of two (n_globs is the only size kept). */
        if ((a->n_globs & (a->n_globs - 1)) == 0) {
                g = reallocarray_safe(a->globs, a->n_globs ? 2 * a->n_globs : 1, sizeof(char *));
                if (!g)
                        return -ENOMEM;
                a->globs = g;
        }
        a->globs[a->n_globs] = strndup_safe(s, len);
        if (!a->globs[a->n_globs])
                return -ENOMEM;
        a->n_globs++;
        return 0;
}

typedef struct app_key {
        uid_t uid;
        size_t index;
        yaml_mark_t mark;
} app_key;

static int cmp_app_key(const void *x, const void *y)
{
        const app_key *a = x, *b = y;

        if (a->uid != b->uid)
                return a->uid < b->uid ? -1 : 1;
        return a->index < b->index ? -1 : a->index > b->index;
}

/* "1000" and 1000 are the same uid: one entry per uid, found by sorting (n log n). */
static int check_repeated_uids(loader *l, const char *path, app_key *keys, size_t n)
{
        const app_key *first = NULL;
        char sub[200];

        if (n < 2)
                return 0;
        qsort(keys, n, sizeof(*keys), cmp_app_key);
        for (size_t i = 1; i < n; i++)
                if (keys[i].uid == keys[i - 1].uid && (!first || keys[i].index < first->index))
                        first = &keys[i];
        if (!first)
                return 0;
        snprintf(sub, sizeof(sub), "%.120s.%u", path, (unsigned)first->uid);
        return fail(l, first->mark, sub, "repeated uid %u", (unsigned)first->uid);
}

static int load_apps(loader *l, const char *path, broker_app_policy **ret, size_t *ret_n)
{
        _cleanup_free_ app_key *keys = NULL;
        broker_app_policy *apps = NULL;
        size_t n = 0, cap = 0;
        int r;

        for (;;) {
                broker_app_policy *a;
                char sub[200];

                r = next(l);
                if (r < 0)
                        goto fail;
                if (l->ev.type == YAML_MAPPING_END_EVENT)
                        break;
                if (n == cap) {
                        size_t ncap = cap ? 2 * cap : 16;
                        broker_app_policy *na = reallocarray_safe(apps, ncap, sizeof(*apps));
                        app_key *nk;

                        if (!na) {
                                r = -ENOMEM;
                                goto fail;
                        }
                        apps = na;
                        nk = reallocarray_safe(keys, ncap, sizeof(*keys));
                        if (!nk) {
                                r = -ENOMEM;
                                goto fail;
                        }
                        keys = nk;
                        cap = ncap;
                }
                a = &apps[n];
                *a = (broker_app_policy){ 0 };
                n++;
                if (l->ev.type == YAML_SCALAR_EVENT)
                        snprintf(sub, sizeof(sub), "%.120s.%.*s", path,
                                 (int)(l->ev.data.scalar.length > 40 ? 40 :
                                                                       l->ev.data.scalar.length),
                                 (const char *)l->ev.data.scalar.value);
                else
                        snprintf(sub, sizeof(sub), "%.120s.", path);
                r = get_uid(l, sub, &a->uid);
                if (r < 0)
                        goto fail;
                keys[n - 1] = (app_key){ a->uid, n - 1, l->ev.start_mark };
                r = next(l);
                if (r < 0)
                        goto fail;
                r = walk_list(l, sub, "a list of app-name globs", glob_item, a);
                if (r < 0)
                        goto fail;
        }
        r = check_repeated_uids(l, path, keys, n);
        if (r < 0)
                goto fail;
        *ret = apps;
        *ret_n = n;
        return 0;
fail:
        broker_config_free_apps(apps, n);
        return r;
}

static int set_apps(loader *l, const char *path, const field *f)
{
        broker_app_policy *apps = NULL;
        size_t n = 0;

        if (!is_null(&l->ev)) {
                int r;

                if (l->ev.type != YAML_MAPPING_START_EVENT)
                        return fail(l, l->ev.start_mark, path,
                                    "expected a mapping of uid to app-name globs, got %s",
                                    ev_kind(&l->ev));
                r = load_apps(l, path, &apps, &n);
                if (r < 0)
                        return r;
        }
        broker_config_free_apps(l->c->apps, l->c->n_apps);
        l->c->apps = n ? apps : NULL;
        l->c->n_apps = n;
        if (!n)
                free(apps);
        return 0;
}

/* ---------------------------------------------------------------- store */

static int set_store_size(loader *l, const char *path, size_t *ret, uint64_t max)
{
        const char *s = NULL;
        size_t len = 0;
        uint64_t v = 0;
        int r;

        r = get_string(l, path, "a number", &s, &len);
        if (r < 0)
                return r;
        if (parse_number(s, len, true, &v) != NUM_OK || v == 0 || v > max)
                return fail(l, l->ev.start_mark, path, "'%.*s' is out of range (allowed 1..%llu)",
                            (int)(len > 40 ? 40 : len), s, (unsigned long long)max);
        *ret = (size_t)v;
        return 0;
}

static int set_store_max_value(loader *l, const char *path, const field *f)
{
        return set_store_size(l, path, &l->c->store_max_value_bytes, CONFIG_SIZE_CAP(CONFIG_GIB));
}

static int set_store_max_depth(loader *l, const char *path, const field *f)
{
        return set_store_size(l, path, &l->c->store_max_depth, 1024);
}

static int set_store_max_keys(loader *l, const char *path, const field *f)
{
        return set_store_size(l, path, &l->c->store_max_keys, CONFIG_SIZE_CAP(CONFIG_GIB));
}

static int set_store_max_read_keys(loader *l, const char *path, const field *f)
{
        return set_store_size(l, path, &l->c->store_max_read_keys, 1u << 20);
}

static int set_store_max_bytes(loader *l, const char *path, const field *f)
{
        return set_store_size(l, path, &l->c->store_max_bytes, CONFIG_SIZE_CAP(1024 * CONFIG_GIB));
}

static int set_store_uid_max_keys(loader *l, const char *path, const field *f)
{
        return set_store_size(l, path, &l->c->store_uid_max_keys, CONFIG_SIZE_CAP(CONFIG_GIB));
}

static int set_store_uid_max_bytes(loader *l, const char *path, const field *f)
{
        return set_store_size(l, path, &l->c->store_uid_max_bytes,
                              CONFIG_SIZE_CAP(1024 * CONFIG_GIB));
}

/* store.limits (the store's own limits; config-boot.c reads the rest of store:). */
int broker_config_set_store_limits(loader *l, const char *path, const field *f)
{
        static const field fields[] = {
                { "max_value_bytes", set_store_max_value },
                { "max_depth", set_store_max_depth },
                { "max_keys", set_store_max_keys },
                { "max_read_keys", set_store_max_read_keys },
                { "max_bytes", set_store_max_bytes },
                { "uid_max_keys", set_store_uid_max_keys },
                { "uid_max_bytes", set_store_uid_max_bytes },
        };

        return walk_map(l, path, fields, ELEMENTSOF(fields));
}

static int rule_uid(loader *l, const char *path, const field *f)
{
        l->rule->any_uid = false;
        return get_uid(l, path, &l->rule->uid);
}

static int rule_app(loader *l, const char *path, const field *f)
{
        const char *s = NULL;
        size_t len = 0;
        int r;

        r = get_app_glob(l, path, &s, &len);
        if (r < 0)
                return r;
        l->rule->app = strndup_safe(s, len);
        return l->rule->app ? 0 : -ENOMEM;
}

static int rule_furi(loader *l, const char *path, const field *f)
{
        const char *s = NULL;
        size_t len = 0;
        hyb_furi *fu = NULL;
        hyb_error e;
        int r;

        r = get_string(l, path, "a fURI pattern", &s, &len);
        if (r < 0)
                return r;
        hyb_error_clear(&e);
        r = hyb_furi_parse(s, len, NULL, &fu, &e);
        if (r < 0)
                return fail(l, l->ev.start_mark, path, "invalid fURI '%.*s' (%s)",
                            (int)(len > 64 ? 64 : len), s, e.message);
        r = hyb_furi_is_absolute(fu);
        hyb_furi_unref(fu);
        if (!r)
                return fail(l, l->ev.start_mark, path, "the fURI '%.*s' must be absolute",
                            (int)(len > 64 ? 64 : len), s);
        l->rule->furi = strndup_safe(s, len);
        return l->rule->furi ? 0 : -ENOMEM;
}

static int right_item(loader *l, const char *path, size_t i, void *ud)
{
        static const char *const names[] = { "read", "write", "delete", "subscribe" };
        size_t k;
        int r;

        r = get_choice(l, path, "read, write, delete or subscribe", names, ELEMENTSOF(names), &k);
        if (r < 0)
                return r;
        l->rule->rights |= 1u << k; /* BROKER_STORE_* order */
        return 0;
}

static int rule_allow(loader *l, const char *path, const field *f)
{
        return walk_list(l, path, "a list of rights", right_item, NULL);
}

static int store_rule_item(loader *l, const char *path, size_t i, void *ud)
{
        static const field fields[] = {
                { "uid", rule_uid },
                { "app", rule_app },
                { "furi", rule_furi },
                { "allow", rule_allow },
        };
        broker_config *c = l->c;
        broker_store_rule *v;
        yaml_mark_t m = l->ev.start_mark;
        int r;

        if (l->ev.type != YAML_MAPPING_START_EVENT)
                return fail(l, m, path, "expected a mapping {uid, app, furi, allow}, got %s",
                            ev_kind(&l->ev));
        v = reallocarray_safe(c->store_rules, c->n_store_rules + 1, sizeof(*v));
        if (!v)
                return -ENOMEM;
        c->store_rules = v;
        l->rule = &v[c->n_store_rules++];
        *l->rule = (broker_store_rule){ .any_uid = true };
        r = walk_map(l, path, fields, ELEMENTSOF(fields));
        if (r < 0)
                return r;
        if (!l->rule->furi)
                return fail(l, m, path, "a rule needs a furi");
        return 0;
}

static int set_store_policy(loader *l, const char *path, const field *f)
{
        broker_config_free_store_rules(l->c->store_rules, l->c->n_store_rules);
        l->c->store_rules = NULL;
        l->c->n_store_rules = 0;
        l->c->store_policy = true; /* even empty: nothing is allowed but what rules allow */
        if (is_null(&l->ev))
                return 0;
        return walk_list(l, path, "a list of rules", store_rule_item, NULL);
}

static int set_policy(loader *l, const char *path, const field *f)
{
        static const field fields[] = {
                { "admins", set_admins },
                { "apps", set_apps },
                { "store", set_store_policy },
        };

        return walk_map(l, path, fields, ELEMENTSOF(fields));
}

static int set_level(loader *l, const char *path, const field *f)
{
        size_t i;
        char *dup;
        int r;

        r = get_choice(l, path, "a log level", log_levels, ELEMENTSOF(log_levels), &i);
        if (r < 0)
                return r;
        dup = strdup(log_levels[i]);
        if (!dup)
                return -ENOMEM;
        free(l->c->log_level);
        l->c->log_level = dup;
        return 0;
}

static int set_syslog(loader *l, const char *path, const field *f)
{
        /* YAML 1.1 booleans, as libyaml users write them. */
        static const char *const yes[] = { "true", "yes", "on" };
        static const char *const no[] = { "false", "no", "off" };
        const char *s = NULL;
        size_t len = 0;
        int r;

        r = get_string(l, path, "true or false", &s, &len);
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
        return fail(l, l->ev.start_mark, path, "expected true or false, got '%.*s'",
                    (int)(len > 40 ? 40 : len), s);
}

static int set_log(loader *l, const char *path, const field *f)
{
        static const field fields[] = {
                { "level", set_level },
                { "syslog", set_syslog },
        };

        return walk_map(l, path, fields, ELEMENTSOF(fields));
}

static size_t limit_index(const char *name)
{
        const broker_limit *row = broker_limit_find(name, strlen(name));

        assert(row);
        return (size_t)(row - broker_limits);
}

/* The relations of the limits table, once the whole file is in; blamed on a key of this file. */
static int check_relations(loader *l)
{
        size_t body = limit_index("max_body"), frame = limit_index("max_frame");
        const broker_limit_relation *rel;
        char msg[200], path[80];
        size_t a, b;
        int i;

        if (l->limit_seen[body] && !l->limit_seen[frame]) {
                /* Only the body limit given: the frame limit follows it, and answers for it. */
                broker_config_frame_follows_body(l->c);
                l->limit_seen[frame] = true;
                l->limit_mark[frame] = l->limit_mark[body];
                l->limit_blame[frame] = broker_limits[body].name;
        }
        i = broker_limits_check_relations(l->c, msg, sizeof(msg));
        if (i < 0)
                return 0;
        rel = &broker_limit_relations[i];
        a = limit_index(rel->a);
        b = limit_index(rel->b);
        snprintf(path, sizeof(path), "limits.%s", l->limit_blame[l->limit_seen[a] ? a : b]);
        if (l->limit_seen[a])
                return fail(l, l->limit_mark[a], path, "must be %s limits.%s (%llu) %s",
                            rel->strict ? "greater than" : "at least", rel->b,
                            (unsigned long long)broker_limit_get(l->c, &broker_limits[b]),
                            rel->why);
        if (!l->limit_seen[b])
                /* Broken before this file (by the setters): hyb_broker_new reports it. */
                return 0;
        if (l->limit_blame[b] != broker_limits[b].name)
                /* max_frame followed max_body: say so, the file does not show it. */
                return fail(l, l->limit_mark[b], path,
                            "makes limits.%s %llu, which must be %s limits.%s (%llu) %s", rel->b,
                            (unsigned long long)broker_limit_get(l->c, &broker_limits[b]),
                            rel->strict ? "less than" : "at most", rel->a,
                            (unsigned long long)broker_limit_get(l->c, &broker_limits[a]),
                            rel->why);
        return fail(l, l->limit_mark[b], path, "must be %s limits.%s (%llu) %s",
                    rel->strict ? "less than" : "at most", rel->a,
                    (unsigned long long)broker_limit_get(l->c, &broker_limits[a]), rel->why);
}

static int parse_document(loader *l)
{
        static const field top[] = {
                { "host", set_host },
                { "listen", set_listen },
                { "limits", set_limits },
                { "policy", set_policy },
                { "log", set_log },
                { "store", broker_config_set_store },
                { "boot", broker_config_set_boot },
                { "auth", broker_config_set_auth },
                { "edge", set_edge },
                { "tls", broker_config_set_tls },
                { "cluster", broker_config_set_cluster },
        };
        int r;

        r = next(l); /* STREAM-START */
        if (r < 0)
                return r;
        r = next(l);
        if (r < 0)
                return r;
        if (l->ev.type == YAML_STREAM_END_EVENT)
                return 0; /* empty file (or only comments): keep every value */
        r = next(l); /* the root node, after DOCUMENT-START */
        if (r < 0)
                return r;
        r = walk_map(l, "", top, ELEMENTSOF(top));
        if (r < 0)
                return r;
        r = broker_config_check_https(l);
        if (r < 0)
                return r;
        r = check_relations(l);
        if (r < 0)
                return r;
        r = next(l); /* DOCUMENT-END */
        if (r < 0)
                return r;
        r = next(l);
        if (r < 0)
                return r;
        if (l->ev.type == YAML_DOCUMENT_START_EVENT) {
                /* A second document would be silently ignored: refuse it. */
                r = next(l);
                if (r < 0)
                        return r;
                return fail(l, l->ev.start_mark, "", "only one YAML document is allowed");
        }
        return 0;
}

int broker_config_parse(broker_config *c, yaml_parser_t *parser, const bool *too_big,
                        hyb_error *reterr)
{
        broker_config tmp;
        loader l = { .parser = parser, .too_big = too_big, .reterr = reterr, .c = &tmp };
        int r;

        r = broker_config_copy(&tmp, c);
        if (r < 0)
                return r;
        r = parse_document(&l);
        if (l.have_ev)
                yaml_event_delete(&l.ev);
        if (r < 0) {
                broker_config_clear(&tmp);
                return r;
        }
        broker_config_clear(c);
        *c = tmp;
        return 0;
}

/* ---- the walk, for config-boot.c ---- */

int loader_fail(loader *l, yaml_mark_t m, const char *path, const char *fmt, ...)
{
        char msg[200];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        return fail(l, m, path, "%s", msg);
}

int loader_next(loader *l)
{
        return next(l);
}

const yaml_event_t *loader_event(loader *l)
{
        return &l->ev;
}

broker_config *loader_config(loader *l)
{
        return l->c;
}

void **loader_user(loader *l)
{
        return &l->user;
}

bool loader_is_null(const yaml_event_t *e)
{
        return is_null(e);
}

int loader_get_string(loader *l, const char *path, const char *what, const char **ret,
                      size_t *ret_len)
{
        return get_string(l, path, what, ret, ret_len);
}

int loader_get_choice(loader *l, const char *path, const char *what, const char *const *names,
                      size_t n, size_t *ret_index)
{
        return get_choice(l, path, what, names, n, ret_index);
}

int loader_walk_map(loader *l, const char *path, const field *fields, size_t n_fields)
{
        return walk_map(l, path, fields, n_fields);
}

int loader_walk_list(loader *l, const char *path, const char *what,
                     int (*item)(loader *l, const char *path, size_t i, void *ud), void *ud)
{
        return walk_list(l, path, what, item, ud);
}
