/* SPDX-License-Identifier: MIT */
/*
 * The builtin endpoint @localhost/org.hybridos.bus/builtin: its methods (the
 * hiBus names) and its events.  Only these calls have their body parsed by the
 * broker (jansson); everything else is routed on the header.
 *
 * The methods are one declarative table, like a client endpoint's
 * (hybrid/endpoint.h): name, handler, argument policy.  The policy is checked
 * by the code that checks a client endpoint's calls (bus/policy.h) before the
 * handler runs, so a handler only reads keys whose presence and type are known.
 *
 * The list methods answer in pages.  Their entries run in one fixed order:
 *
 *   builtin (serial UINT64_MAX) -> conns (newest first: decreasing accept serial)
 *     each: procs / bubbles (newest first: decreasing registration serial)
 *
 * so a cursor "<endpoint serial>-<member serial>" (hex) names the last entry
 * sent and the next page resumes right after it, whatever came and went in
 * between.  A page is bounded in entries and in bytes: one list call costs the
 * event loop bounded work and memory, however much is registered.
 */
#include <jansson.h>
#include <inttypes.h>
#include <stdio.h>

#include "broker-internal.h"
#include "bus/names.h"
#include "bus/policy.h"
#include "common/util.h"

static const char *const builtin_bubbles[] = {
        "NewEndpoint", "BrokenEndpoint", "LostEventGenerator", "LostEventBubble", "SystemShuttingDown",
        "RevocationApplied",
};

int builtin_init(hyb_broker *b)
{
        bconn *bi = calloc(1, sizeof *bi);

        if (!bi)
                return -ENOMEM;
        bi->b = b;
        bi->builtin = true;
        bi->state = BCONN_READY;
        bi->serial = UINT64_MAX; /* listed first */
        bi->name = strdup("@localhost/org.hybridos.bus/builtin");
        bi->app = strdup("org.hybridos.bus");
        if (!bi->name || !bi->app) {
                free(bi->name);
                free(bi->app);
                free(bi);
                return -ENOMEM;
        }
        bi->name_len = strlen(bi->name);
        b->builtin = bi;
        broker_ep_insert(b, bi);
        for (size_t i = 0; i < ELEMENTSOF(builtin_bubbles); i++)
                if (events_register(bi, builtin_bubbles[i], "*", "*", false, NULL) < 0)
                        return -ENOMEM;
        /* The broker's own log lines, for the logging service only (they name peers' uids). */
        if (events_register(bi, "Log", "*", "org.hybridos.logd", false, NULL) < 0)
                return -ENOMEM;
        return 0;
}

/* ---------------------------------------------------------------- list pages */

#define LIST_PAGE_BYTES (256u * 1024) /* the body of one list reply, at most */
#define LIST_ENVELOPE 64u             /* {"items":[ ... ],"next":"<16 hex>-<16 hex>"} */
#define LIST_LIMIT_DEFAULT 100u
#define LIST_LIMIT_MAX 1000u

typedef struct page {
        char *buf;
        size_t len, alloc;
        size_t n, limit, budget;       /* entries written, most entries, most bytes */
        size_t max_body;
        bool paged;                    /* asked with "limit" or "cursor": {"items","next"} */
        bool more;                     /* an entry past this page exists */
        uint64_t at_ep, at_member;     /* resume after this position */
        uint64_t last_ep, last_member; /* position of the last entry written */
} page;

static int page_append(page *pg, const char *s, size_t n)
{
        if (grow_array((void **)&pg->buf, &pg->alloc, pg->len + n + 1, 1) < 0)
                return -ENOMEM;
        memcpy(pg->buf + pg->len, s, n);
        pg->len += n;
        pg->buf[pg->len] = 0;
        return 0;
}

/* Reads exactly 1..16 hex digits of s[*i..len) up to '-' or the end. */
static bool parse_hex(const char *s, size_t len, size_t *i, uint64_t *ret)
{
        size_t start = *i;
        uint64_t v = 0;

        for (; *i < len && s[*i] != '-'; (*i)++) {
                char ch = s[*i];
                unsigned d;

                if (ch >= '0' && ch <= '9')
                        d = (unsigned)(ch - '0');
                else if (ch >= 'a' && ch <= 'f')
                        d = (unsigned)(ch - 'a' + 10);
                else
                        return false;
                if (*i - start == 16)
                        return false;
                v = v << 4 | d;
        }
        *ret = v;
        return *i > start;
}

static int page_init(page *pg, bconn *c, json_t *p, hyb_error *e)
{
        json_t *lim = json_object_get(p, "limit"), *cur = json_object_get(p, "cursor");
        size_t max_body = c->b->c->max_body;

        *pg = (page){ .limit = SIZE_MAX, .at_ep = UINT64_MAX, .at_member = UINT64_MAX };
        pg->max_body = max_body;
        pg->budget = max_body < LIST_PAGE_BYTES ? max_body : LIST_PAGE_BYTES;
        pg->budget = pg->budget > LIST_ENVELOPE ? pg->budget - LIST_ENVELOPE : 0;
        pg->paged = lim || cur;
        if (lim) {
                json_int_t v = json_integer_value(lim);

                if (v < 1 || v > LIST_LIMIT_MAX)
                        return err_set(e, HYB_E_BAD_REQUEST, -1, "limit must be 1..%u", LIST_LIMIT_MAX);
                pg->limit = (size_t)v;
        } else if (pg->paged) {
                pg->limit = LIST_LIMIT_DEFAULT;
        }
        if (cur) {
                const char *s = json_string_value(cur);
                size_t len = json_string_length(cur), i = 0;

                if (!parse_hex(s, len, &i, &pg->at_ep) || i == len || s[i] != '-' ||
                    (i++, !parse_hex(s, len, &i, &pg->at_member)) || i != len)
                        return err_set(e, HYB_E_BAD_REQUEST, -1,
                                       "malformed cursor (use the \"next\" of the previous page)");
        }
        return pg->paged ? page_append(pg, "{\"items\":[", 10) : page_append(pg, "[", 1);
}

/* Room for one more entry?  If not, the page ends here and says there is more. */
static bool page_full(page *pg)
{
        if (pg->n < pg->limit)
                return false;
        pg->more = true;
        return true;
}

/* Entries at or before the cursor were sent in earlier pages. */
static bool page_after(const page *pg, uint64_t ep, uint64_t member)
{
        return ep < pg->at_ep || (ep == pg->at_ep && member < pg->at_member);
}

/*
 * Appends an entry's JSON text at position (ep, member), within the page's byte budget.
 * raw, when not NULL, is JSON text added to the entry object as key "policy" (the stored
 * policy goes out as it is, without being parsed again).
 */
static int page_add(page *pg, json_t *entry, const char *raw, uint64_t ep, uint64_t member, hyb_error *e)
{
        char *text = entry ? json_dumps(entry, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
        size_t tl;
        int r;

        json_decref(entry);
        if (!text)
                return -ENOMEM;
        tl = strlen(text);
        if (raw) {
                /* {...} -> {...,"policy":raw} */
                static const char key[] = ",\"policy\":";
                size_t rl = strlen(raw);
                char *t = malloc(tl + sizeof key - 1 + rl + 1);

                if (!t || tl < 2) {
                        free(t);
                        free(text);
                        return -ENOMEM;
                }
                memcpy(t, text, tl - 1);
                memcpy(t + tl - 1, key, sizeof key - 1);
                memcpy(t + tl - 1 + sizeof key - 1, raw, rl);
                t[tl - 1 + sizeof key - 1 + rl] = '}';
                free(text);
                text = t;
                tl += sizeof key - 1 + rl;
        }
        if (pg->len + 1 + tl > pg->budget) {
                if (!pg->paged) {
                        free(text);
                        return err_set(e, HYB_E_TOO_LARGE, -1,
                                       "list longer than %zu bytes: ask for it in pages "
                                       "(params \"limit\" and \"cursor\")",
                                       pg->budget);
                }
                if (pg->n > 0) {
                        /* The next page starts with this entry. */
                        free(text);
                        pg->more = true;
                        return 0;
                }
                /* One entry alone may pass the page budget; it still has to fit a body. */
                if (tl + LIST_ENVELOPE > pg->max_body) {
                        free(text);
                        return err_set(e, HYB_E_TOO_LARGE, -1, "list entry larger than max_body");
                }
        }
        r = (pg->n ? page_append(pg, ",", 1) : 0);
        if (r >= 0)
                r = page_append(pg, text, tl);
        free(text);
        if (r < 0)
                return r;
        pg->n++;
        pg->last_ep = ep;
        pg->last_member = member;
        return 0;
}

/* Closes the page: "[...]", or {"items":[...]} with "next" when more entries follow. */
static int page_finish(page *pg)
{
        char tail[64];
        int n;

        if (!pg->paged)
                return page_append(pg, "]", 1);
        if (pg->more)
                n = snprintf(tail, sizeof tail, "],\"next\":\"%" PRIx64 "-%" PRIx64 "\"}", pg->last_ep,
                             pg->last_member);
        else
                n = snprintf(tail, sizeof tail, "]}");
        return page_append(pg, tail, (size_t)n);
}

/* ---------------------------------------------------------------- parameters */

/*
 * A string parameter (absent or null: NULL).  A string hiding a NUL byte (JSON
 * "\u0000") is refused with 406: C string handling would cut it there and act
 * on another name than the one sent.
 */
static int str_param(json_t *p, const char *key, const char **ret, hyb_error *e)
{
        json_t *v = json_object_get(p, key);
        const char *s;

        *ret = NULL;
        if (!v || json_is_null(v))
                return 0;
        if (!json_is_string(v))
                return err_set(e, HYB_E_BAD_REQUEST, -1, "%s must be a string", key);
        s = json_string_value(v);
        if (strlen(s) != json_string_length(v))
                return err_set(e, HYB_E_NOT_ACCEPTABLE, (long)strlen(s), "%s: NUL byte at offset %zu", key,
                               strlen(s));
        *ret = s;
        return 0;
}

/* ---------------------------------------------------------------- result of a handler */

typedef struct builtin_result {
        json_t *json;  /* a JSON reply, or */
        page pg;       /* a list page (used when is_page) */
        bool is_page;
} builtin_result;

typedef int (*builtin_fn)(bconn *c, json_t *p, builtin_result *res, hyb_error *e);

/* ---------------------------------------------------------------- registrations */

static void proc_free(bproc *pr)
{
        free(pr->name);
        free(pr->policy);
        bus_acl_free(pr->hosts);
        bus_acl_free(pr->apps);
        free(pr);
}

/*
 * An argument policy as doc/protocol.md describes it: [{"key","type"?,"required"?}, ...]
 * with a key, a known type (name or HYB_JSON_* number) and a boolean (or 0/1) required.
 * Those who list it (hybrid list, bindings) can then rely on its shape.
 */
static int check_policy(json_t *policy, hyb_error *e)
{
        static const char *const types[] = { "any", "string", "integer", "number",
                                             "boolean", "object", "array", "null" };
        size_t i;
        json_t *a;

        json_array_foreach(policy, i, a) {
                json_t *key = json_object_get(a, "key"), *type = json_object_get(a, "type"),
                       *req = json_object_get(a, "required");
                bool type_ok = !type;

                if (!json_is_object(a) || !json_is_string(key) || json_string_length(key) == 0 ||
                    strlen(json_string_value(key)) != json_string_length(key))
                        return err_set(e, HYB_E_BAD_REQUEST, -1,
                                       "policy entry %zu: \"key\" must be a non-empty string", i);
                if (json_is_integer(type))
                        type_ok = json_integer_value(type) >= 0 &&
                                  json_integer_value(type) < (json_int_t)ELEMENTSOF(types);
                for (size_t t = 0; json_is_string(type) && !type_ok && t < ELEMENTSOF(types); t++)
                        type_ok = !strcmp(json_string_value(type), types[t]);
                if (!type_ok)
                        return err_set(e, HYB_E_BAD_REQUEST, -1, "policy entry %zu: unknown \"type\"", i);
                if (req && !json_is_boolean(req) &&
                    !(json_is_integer(req) && (json_integer_value(req) & ~(json_int_t)1) == 0))
                        return err_set(e, HYB_E_BAD_REQUEST, -1,
                                       "policy entry %zu: \"required\" must be a boolean", i);
        }
        return 0;
}

static int do_register_procedure(bconn *c, json_t *p, builtin_result *res, hyb_error *e)
{
        json_t *policy = json_object_get(p, "policy");
        const char *name, *hosts, *apps;
        bproc *pr;
        int r;

        (void)res;
        if ((r = str_param(p, "methodName", &name, e)) < 0 || (r = str_param(p, "forHost", &hosts, e)) < 0 ||
            (r = str_param(p, "forApp", &apps, e)) < 0)
                return r;
        r = bus_name_check_ident(name, strlen(name), e);
        if (r < 0)
                return r;
        r = auth_bus_check(c, c->name, name, HYB_TOKEN_ACT_REG, e);
        if (r < 0)
                return r;
        for (pr = c->procs; pr; pr = pr->next)
                if (bus_name_equal(pr->name, pr->name_len, name, strlen(name)))
                        return err_set(e, HYB_E_CONFLICT, -1, "procedure %s already registered", name);
        if (c->n_regs >= c->b->c->max_subscriptions)
                return err_set(e, HYB_E_TOO_MANY, -1, "too many registrations");
        unsigned uid_subs, uid_regs;
        size_t uid_policy;
        quota_uid_objects(c, &uid_subs, &uid_regs, &uid_policy);
        if (uid_regs >= c->b->c->uid_max_registrations)
                return err_set(e, HYB_E_TOO_MANY, -1, "quota uid_max_registrations exceeded");
        if (policy && (r = check_policy(policy, e)) < 0)
                return r;
        pr = calloc(1, sizeof *pr);
        if (!pr)
                return -ENOMEM;
        pr->name = strdup(name);
        pr->name_len = strlen(name);
        pr->policy = policy ? json_dumps(policy, JSON_COMPACT) : strdup("[]");
        if (!pr->name || !pr->policy) {
                proc_free(pr);
                return -ENOMEM;
        }
        /* What one registration holds, and what its listProcedures entry costs, is bounded. */
        if (strlen(pr->policy) > c->b->c->max_policy_bytes) {
                proc_free(pr);
                return err_set(e, HYB_E_TOO_LARGE, -1, "policy longer than limits.max_policy_bytes (%zu bytes)",
                               c->b->c->max_policy_bytes);
        }
        if (uid_policy + strlen(pr->policy) > c->b->c->uid_max_policy_bytes) {
                proc_free(pr);
                return err_set(e, HYB_E_INSUFFICIENT_STORAGE, -1, "quota uid_max_policy_bytes exceeded");
        }
        if ((r = bus_acl_compile(hosts, &pr->hosts, e)) < 0 || (r = bus_acl_compile(apps, &pr->apps, e)) < 0) {
                proc_free(pr);
                return r;
        }
        pr->serial = ++c->b->next_serial;
        pr->next = c->procs;
        c->procs = pr;
        c->n_regs++;
        c->policy_bytes += strlen(pr->policy);
        return 0;
}

static int do_revoke_procedure(bconn *c, json_t *p, builtin_result *res, hyb_error *e)
{
        const char *name;
        int r;

        (void)res;
        if ((r = str_param(p, "methodName", &name, e)) < 0)
                return r;
        for (bproc **pp = &c->procs; *pp; pp = &(*pp)->next) {
                bproc *pr = *pp;
                if (bus_name_equal(pr->name, pr->name_len, name, strlen(name))) {
                        *pp = pr->next;
                        c->n_regs--;
                        c->policy_bytes -= strlen(pr->policy);
                        proc_free(pr);
                        /* Its channels carry method lists the broker computed with it: a
                         * procedure registered again under narrower access lists must not
                         * stay reachable on them (the callers open new ones). */
                        channel_callee_changed(c, "the callee revoked a procedure");
                        return 0;
                }
        }
        return err_set(e, HYB_E_NOT_FOUND, -1, "no procedure %s", name);
}

static int do_register_event(bconn *c, json_t *p, builtin_result *res, hyb_error *e)
{
        const char *name, *hosts, *apps;
        bool cluster = json_is_true(json_object_get(p, "cluster"));
        int r;

        (void)res;
        if ((r = str_param(p, "bubbleName", &name, e)) < 0 || (r = str_param(p, "forHost", &hosts, e)) < 0 ||
            (r = str_param(p, "forApp", &apps, e)) < 0)
                return r;
        if (bus_name_check_ident(name, strlen(name), NULL) == 0 &&
            (r = auth_bus_check(c, c->name, name, HYB_TOKEN_ACT_REG, e)) < 0)
                return r;
        if (cluster && !c->b->xhost)
                return err_set(e, HYB_E_NOT_IMPLEMENTED, -1,
                               "\"cluster\": this daemon is not in a cluster (cluster.broker and host)");
        return events_register(c, name, hosts, apps, cluster, e);
}

static int do_revoke_event(bconn *c, json_t *p, builtin_result *res, hyb_error *e)
{
        const char *name;
        int r;

        (void)res;
        if ((r = str_param(p, "bubbleName", &name, e)) < 0)
                return r;
        return events_revoke(c, name);
}

static int sub_params(json_t *p, const char **ep, const char **bubble, hyb_error *e)
{
        int r = str_param(p, "endpointName", ep, e);

        return r < 0 ? r : str_param(p, "bubbleName", bubble, e);
}

static int do_subscribe_event(bconn *c, json_t *p, builtin_result *res, hyb_error *e)
{
        const char *ep, *bubble;
        int r;

        (void)res;
        if ((r = sub_params(p, &ep, &bubble, e)) < 0)
                return r;
        /* A glob must lie within a granted pattern (doc/token.md): checked before anything is
         * looked up, so a refusal says nothing about what exists. */
        if ((r = auth_bus_check(c, ep, bubble, HYB_TOKEN_ACT_SUB, e)) < 0)
                return r;
        return events_subscribe(c, ep, bubble, e);
}

static int do_unsubscribe_event(bconn *c, json_t *p, builtin_result *res, hyb_error *e)
{
        const char *ep, *bubble;
        int r;

        (void)res;
        if ((r = sub_params(p, &ep, &bubble, e)) < 0)
                return r;
        return events_unsubscribe(c, ep, bubble);
}

/* ---------------------------------------------------------------- lists */

/* May c call pr of ep (its forHost/forApp, and a token session's `call`)?  The builtin
 * procedures need nothing. */
static bool may_call(bconn *c, bconn *ep, const bproc *pr)
{
        return route_acl(ep, pr->hosts, pr->apps, c) &&
               (ep->builtin || auth_bus_check(c, ep->name, pr->name, HYB_TOKEN_ACT_CALL, NULL) == 0);
}

/* May c subscribe to bb of ep (forHost/forApp, and a token session's `sub`)? */
static bool may_sub(bconn *c, bconn *ep, const bbubble *bb)
{
        return route_acl(ep, bb->hosts, bb->apps, c) &&
               auth_bus_check(c, ep->name, bb->name, HYB_TOKEN_ACT_SUB, NULL) == 0;
}

/* Endpoints the caller may see: admins all; others those offering something they may use. */
static bool may_see(bconn *c, bconn *ep)
{
        if (c->admin || ep == c || ep->builtin)
                return true;
        for (bproc *p = ep->procs; p; p = p->next)
                if (may_call(c, ep, p))
                        return true;
        for (bbubble *bb = ep->bubbles; bb; bb = bb->next)
                if (may_sub(c, ep, bb))
                        return true;
        return false;
}

/* The endpoints in list order (see the top of the file). */
static bconn *ep_next(hyb_broker *b, bconn *ep)
{
        return ep->builtin ? b->conns : ep->next;
}

static int do_list_endpoints(bconn *c, json_t *p, builtin_result *res, hyb_error *e)
{
        hyb_broker *b = c->b;
        page *pg = &res->pg;
        int r;

        res->is_page = true;
        if ((r = page_init(pg, c, p, e)) < 0)
                return r;
        for (bconn *ep = b->builtin; ep && !pg->more; ep = ep_next(b, ep)) {
                if (!page_after(pg, ep->serial, 0) || ep->state != BCONN_READY || !may_see(c, ep))
                        continue;
                if (page_full(pg))
                        break;
                json_t *o = json_pack("{s:s}", "endpointName", ep->name);
                json_t *m = json_array(), *ev = json_array();
                for (bproc *pr = ep->procs; pr; pr = pr->next)
                        if (c->admin || may_call(c, ep, pr))
                                json_array_append_new(m, json_string(pr->name));
                for (bbubble *bb = ep->bubbles; bb; bb = bb->next)
                        if (c->admin || may_sub(c, ep, bb))
                                json_array_append_new(ev, json_string(bb->name));
                json_object_set_new(o, "methods", m);
                json_object_set_new(o, "bubbles", ev);
                if (c->admin && !ep->builtin) {
                        json_object_set_new(o, "uid", json_integer(ep->uid));
                        json_object_set_new(o, "pid", json_integer(ep->pid));
                        json_object_set_new(o, "pendingCalls", json_integer(ep->n_out));
                        json_object_set_new(o, "subscriptions", json_integer(ep->n_subs));
                }
                if ((r = page_add(pg, o, NULL, ep->serial, 0, e)) < 0)
                        return r;
        }
        return 0;
}

/* One endpoint's procedures (or bubbles) the caller may use, from the page's position on. */
static int list_members_of(bconn *c, bconn *ep, bool events, page *pg, hyb_error *e)
{
        char full[WIRE_ENDPOINT_MAX + WIRE_MEMBER_MAX + 2];
        json_t *o;
        int r;

        if (!events) {
                for (bproc *pr = ep->procs; pr && !pg->more; pr = pr->next) {
                        if (!page_after(pg, ep->serial, pr->serial) || !may_call(c, ep, pr))
                                continue;
                        if (page_full(pg))
                                break;
                        snprintf(full, sizeof full, "%s/%s", ep->name, pr->name);
                        o = json_pack("{s:s, s:s, s:s}", "procedureName", full, "forHost", bus_acl_text(pr->hosts),
                                      "forApp", bus_acl_text(pr->apps));
                        if ((r = page_add(pg, o, pr->policy, ep->serial, pr->serial, e)) < 0)
                                return r;
                }
                return 0;
        }
        for (bbubble *bb = ep->bubbles; bb && !pg->more; bb = bb->next) {
                if (!page_after(pg, ep->serial, bb->serial) || !may_sub(c, ep, bb))
                        continue;
                if (page_full(pg))
                        break;
                snprintf(full, sizeof full, "%s/%s", ep->name, bb->name);
                o = json_pack("{s:s, s:s, s:s}", "eventName", full, "forHost", bus_acl_text(bb->hosts), "forApp",
                              bus_acl_text(bb->apps));
                if ((r = page_add(pg, o, NULL, ep->serial, bb->serial, e)) < 0)
                        return r;
        }
        return 0;
}

static int list_members(bconn *c, json_t *p, bool events, builtin_result *res, hyb_error *e)
{
        hyb_broker *b = c->b;
        page *pg = &res->pg;
        const char *filter;
        size_t flen;
        int r;

        res->is_page = true;
        if ((r = str_param(p, "endpointName", &filter, e)) < 0 || (r = page_init(pg, c, p, e)) < 0)
                return r;
        flen = filter ? strlen(filter) : 0;
        if (filter && bus_glob_is_literal(filter, flen)) {
                /* One endpoint: found by name, not by walking every connection. */
                bconn *ep = broker_lookup(b, filter, flen);
                return ep && page_after(pg, ep->serial, 0) ? list_members_of(c, ep, events, pg, e) : 0;
        }
        for (bconn *ep = b->builtin; ep && !pg->more; ep = ep_next(b, ep)) {
                /* Whole endpoints before the cursor are skipped without looking at their members. */
                if (ep->serial > pg->at_ep || ep->state != BCONN_READY)
                        continue;
                if (filter && !bus_glob_match(filter, flen, ep->name, ep->name_len))
                        continue;
                if ((r = list_members_of(c, ep, events, pg, e)) < 0)
                        return r;
        }
        return 0;
}

static int do_list_procedures(bconn *c, json_t *p, builtin_result *res, hyb_error *e)
{
        return list_members(c, p, false, res, e);
}

static int do_list_events(bconn *c, json_t *p, builtin_result *res, hyb_error *e)
{
        return list_members(c, p, true, res, e);
}

/* Newest connection first, as every list. */
static int cmp_serial_desc(const void *a, const void *b)
{
        uint64_t x = (*(bconn *const *)a)->serial, y = (*(bconn *const *)b)->serial;

        return x < y ? 1 : x > y ? -1 : 0;
}

/*
 * A bubble keeps its subscribers unordered (fan-out swaps them around): each page
 * sorts those after the cursor, at most one per connection.
 */
static int do_list_subscribers(bconn *c, json_t *p, builtin_result *res, hyb_error *e)
{
        const char *ep, *bubble;
        bconn *gen, **v;
        bbubble *bb;
        size_t n = 0;
        int r;

        if ((r = sub_params(p, &ep, &bubble, e)) < 0)
                return r;
        gen = ep ? broker_lookup(c->b, ep, strlen(ep)) : c;
        if (!gen || !(bb = events_find_bubble(gen, bubble, strlen(bubble))))
                return err_set(e, HYB_E_NOT_FOUND, -1, "no such event");
        if (gen != c && !c->admin)
                return err_set(e, HYB_E_FORBIDDEN, -1, "only the generator or an administrator may list subscribers");
        res->is_page = true;
        if ((r = page_init(&res->pg, c, p, e)) < 0)
                return r;
        v = mallocarray(bb->n_subs ? bb->n_subs : 1, sizeof *v);
        if (!v)
                return -ENOMEM;
        for (size_t i = 0; i < bb->n_subs; i++)
                if (bb->subs[i].conn->state == BCONN_READY &&
                    page_after(&res->pg, bb->subs[i].conn->serial, 0))
                        v[n++] = bb->subs[i].conn;
        qsort(v, n, sizeof *v, cmp_serial_desc);
        for (size_t i = 0; r >= 0 && i < n && !res->pg.more && !page_full(&res->pg); i++)
                r = page_add(&res->pg, json_string(v[i]->name), NULL, v[i]->serial, 0, e);
        free(v);
        return r;
}

/* ---------------------------------------------------------------- the rest */

static int do_terminate_call(bconn *c, json_t *p, builtin_result *res, hyb_error *e)
{
        json_int_t id = json_integer_value(json_object_get(p, "callId"));

        (void)res;
        if (id < 0)
                return err_set(e, HYB_E_BAD_REQUEST, -1, "callId must be a non-negative integer");
        return route_terminate(c, (uint64_t)id);
}

static int do_monitor(bconn *c, json_t *p, builtin_result *res, hyb_error *e)
{
        bool on = json_is_true(json_object_get(p, "enable"));

        (void)res;
        if (!c->admin)
                return err_set(e, HYB_E_FORBIDDEN, -1, "monitor is for administrators");
        if (on != c->monitor) {
                c->monitor = on;
                c->b->n_monitors += on ? 1 : -1;
        }
        /* The monitor sees every packet: calls go through the broker from now on. */
        if (on)
                channel_close_all(c->b, 503, "a monitor is attached", 1000);
        return 0;
}

static int do_close_channel(bconn *c, json_t *p, builtin_result *res, hyb_error *e)
{
        json_int_t id = json_integer_value(json_object_get(p, "channel"));

        (void)res;
        if (id <= 0)
                return err_set(e, HYB_E_BAD_REQUEST, -1, "channel must be a positive integer");
        return channel_close_by_peer(c, (uint64_t)id, e);
}

/* Revocation feed entries (revocation.c): any peer may deliver one or list the feed. */
static int do_deliver_revocation(bconn *c, json_t *p, builtin_result *res, hyb_error *e)
{
        return revocation_deliver(c, p, &res->json, e);
}

static int do_list_revocations(bconn *c, json_t *p, builtin_result *res, hyb_error *e)
{
        return revocation_list(c, p, &res->json, e);
}

/* Zero-copy: the body goes back as is, JSON or binary, any size up to the limit. */
static void do_echo(bconn *c, bframe *f)
{
        static const char bi[] = "@localhost/org.hybridos.bus/builtin";
        uint8_t buf[WIRE_HDR_SIZE + WIRE_NAMES_MAX];
        struct iovec iov[2];
        wire_hdr h = { .type = WIRE_RESULT, .flags = f->h.flags & WIRE_F_BINARY, .status = 200,
                       .call_id = f->h.call_id };

        if (!bconn_room(c, f->len + 2 * WIRE_ENDPOINT_MAX))
                return;
        wire_build(&h, bi, sizeof bi - 1, c->name, c->name_len, NULL, 0, NULL, f->h.body_len, buf, iov);
        if (c->b->n_monitors)
                monitor_copy(c->b, WIRE_RESULT, &h, bi, sizeof bi - 1, c->name, c->name_len, NULL, 0,
                             bframe_body(f), f->h.body_len);
        bconn_forward(c, buf, iov[0].iov_len, f);
}

/* ---------------------------------------------------------------- the table */

static const hyb_arg_policy register_procedure_args[] = {
        { "methodName", HYB_JSON_STRING, 1 },
        { "forHost", HYB_JSON_ANY, 0 }, /* string or null (str_param) */
        { "forApp", HYB_JSON_ANY, 0 },
        { "policy", HYB_JSON_ARRAY, 0 },
};
static const hyb_arg_policy method_name_args[] = {
        { "methodName", HYB_JSON_STRING, 1 },
};
static const hyb_arg_policy register_event_args[] = {
        { "bubbleName", HYB_JSON_STRING, 1 },
        { "forHost", HYB_JSON_ANY, 0 },
        { "forApp", HYB_JSON_ANY, 0 },
        { "cluster", HYB_JSON_BOOLEAN, 0 },
};
static const hyb_arg_policy bubble_name_args[] = {
        { "bubbleName", HYB_JSON_STRING, 1 },
};
static const hyb_arg_policy subscribe_args[] = {
        { "endpointName", HYB_JSON_STRING, 1 },
        { "bubbleName", HYB_JSON_STRING, 1 },
};
static const hyb_arg_policy list_endpoints_args[] = {
        { "cursor", HYB_JSON_STRING, 0 },
        { "limit", HYB_JSON_INTEGER, 0 },
};
static const hyb_arg_policy list_members_args[] = {
        { "endpointName", HYB_JSON_STRING, 0 },
        { "cursor", HYB_JSON_STRING, 0 },
        { "limit", HYB_JSON_INTEGER, 0 },
};
static const hyb_arg_policy list_subscribers_args[] = {
        { "endpointName", HYB_JSON_STRING, 0 },
        { "bubbleName", HYB_JSON_STRING, 1 },
        { "cursor", HYB_JSON_STRING, 0 },
        { "limit", HYB_JSON_INTEGER, 0 },
};
static const hyb_arg_policy terminate_args[] = {
        { "callId", HYB_JSON_INTEGER, 1 },
};
static const hyb_arg_policy deliver_revocation_args[] = {
        { "entry", HYB_JSON_STRING, 1 },
};
static const hyb_arg_policy list_revocations_args[] = {
        { "after", HYB_JSON_INTEGER, 0 },
        { "limit", HYB_JSON_INTEGER, 0 },
};
static const hyb_arg_policy close_channel_args[] = {
        { "channel", HYB_JSON_INTEGER, 1 },
};
static const hyb_arg_policy monitor_args[] = {
        { "enable", HYB_JSON_BOOLEAN, 0 },
};

typedef struct builtin_method {
        const char *name;
        builtin_fn fn;
        void (*raw)(bconn *c, bframe *f); /* takes the frame as is (echo): no JSON, no policy */
        const hyb_arg_policy *args;
        size_t n_args;
} builtin_method;

#define BUILTIN(n, fn, policy) { (n), (fn), NULL, (policy), ELEMENTSOF(policy) }

static const builtin_method builtin_methods[] = {
        { "echo", NULL, do_echo, NULL, 0 },
        BUILTIN("registerProcedure", do_register_procedure, register_procedure_args),
        BUILTIN("revokeProcedure", do_revoke_procedure, method_name_args),
        BUILTIN("registerEvent", do_register_event, register_event_args),
        BUILTIN("revokeEvent", do_revoke_event, bubble_name_args),
        BUILTIN("subscribeEvent", do_subscribe_event, subscribe_args),
        BUILTIN("unsubscribeEvent", do_unsubscribe_event, subscribe_args),
        BUILTIN("listEndpoints", do_list_endpoints, list_endpoints_args),
        BUILTIN("listProcedures", do_list_procedures, list_members_args),
        BUILTIN("listEvents", do_list_events, list_members_args),
        BUILTIN("listEventSubscribers", do_list_subscribers, list_subscribers_args),
        BUILTIN("terminateCall", do_terminate_call, terminate_args),
        BUILTIN("monitor", do_monitor, monitor_args),
        BUILTIN("deliverRevocation", do_deliver_revocation, deliver_revocation_args),
        BUILTIN("listRevocations", do_list_revocations, list_revocations_args),
        { "openChannel", NULL, channel_open, NULL, 0 },
        BUILTIN("closeChannel", do_close_channel, close_channel_args),
};

/* Method names compare as every bus name does: by length, ASCII case folded (hiBus). */
static const builtin_method *builtin_find(const char *name, size_t len)
{
        for (size_t i = 0; i < ELEMENTSOF(builtin_methods); i++)
                if (bus_name_equal(builtin_methods[i].name, strlen(builtin_methods[i].name), name, len))
                        return &builtin_methods[i];
        return NULL;
}

static void reply_err(bconn *c, uint64_t id, int r, const hyb_error *e)
{
        route_reply(c, id, hyb_err_to_status(r), e && e->message[0] ? e->message : hyb_strerror(r), NULL, 0, 0);
}

void builtin_reply_unknown(bconn *c, uint64_t id, const char *kind, const char *name, size_t len)
{
        hyb_error e = { 0 };
        int r;

        /* "echo\0junk" is no name at all, not echo: 406 before any lookup by C string. */
        r = bus_name_check_ident(name, len, &e);
        if (r < 0)
                err_prefix(&e, "%s method name", kind);
        else
                r = err_set(&e, HYB_E_NOT_FOUND, -1, "no such %s method: %.*s", kind, (int)len,
                            name);
        reply_err(c, id, r, &e);
}

void builtin_call(bconn *c, bframe *f)
{
        const builtin_method *m = builtin_find(f->member, f->h.member_len);
        uint64_t id = f->h.call_id;
        builtin_result res = { 0 };
        hyb_error e = { 0 };
        json_error_t jerr;
        json_t *p;
        int r;

        if (!m) {
                builtin_reply_unknown(c, id, "builtin", f->member, f->h.member_len);
                return;
        }
        if (m->raw) {
                m->raw(c, f);
                return;
        }
        if (f->h.flags & WIRE_F_BINARY) {
                route_reply(c, id, 400, "builtin methods take JSON params", NULL, 0, 0);
                return;
        }
        /* JSON_ALLOW_NUL: a name with "\u0000" is parsed so it can be refused as a name (406). */
        const uint8_t *body = bframe_body(f);
        p = f->h.body_len ? json_loadb((const char *)body, f->h.body_len, JSON_ALLOW_NUL, &jerr) : json_object();
        if (!p) {
                route_reply(c, id, 400, "params are not valid JSON", NULL, 0, 0);
                return;
        }
        r = bus_policy_check_json(m->args, m->n_args, p, &e);
        if (r >= 0)
                r = m->fn(c, p, &res, &e);
        json_decref(p);
        if (r >= 0 && res.is_page)
                r = page_finish(&res.pg);
        if (r < 0)
                reply_err(c, id, r, &e);
        else if (res.is_page)
                route_reply(c, id, 200, NULL, res.pg.buf, res.pg.len, 0);
        else if (res.json) {
                char *text = json_dumps(res.json, JSON_COMPACT);
                if (text)
                        route_reply(c, id, 200, NULL, text, strlen(text), 0);
                else
                        route_reply(c, id, 500, "out of memory", NULL, 0, 0);
                free(text);
        } else
                route_reply(c, id, 200, NULL, "{}", 2, 0);
        json_decref(res.json);
        free(res.pg.buf);
}
