/* SPDX-License-Identifier: MIT */
/*
 * The builtin endpoint @localhost/org.hybridos.bus/builtin: its methods (the
 * hiBus names) and its events.  Only these calls have their body parsed by the
 * broker (jansson); everything else is routed on the header.
 */
#include <jansson.h>
#include <stdio.h>

#include "broker-internal.h"
#include "bus/names.h"
#include "common/util.h"

static const char *const builtin_bubbles[] = {
        "NewEndpoint", "BrokenEndpoint", "LostEventGenerator", "LostEventBubble", "SystemShuttingDown",
};

int builtin_init(hyb_broker *b)
{
        bconn *bi = calloc(1, sizeof *bi);

        if (!bi)
                return -ENOMEM;
        bi->b = b;
        bi->builtin = true;
        bi->state = BCONN_READY;
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
                if (events_register(bi, builtin_bubbles[i], "*", "*", NULL) < 0)
                        return -ENOMEM;
        return 0;
}

static void reply_json(bconn *c, uint64_t id, json_t *j)
{
        char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
        json_decref(j);
        if (!text) {
                route_reply(c, id, 500, "out of memory", NULL, 0, 0);
                return;
        }
        route_reply(c, id, 200, NULL, text, strlen(text), 0);
        free(text);
}

static void reply_err(bconn *c, uint64_t id, int r, const hyb_error *e)
{
        route_reply(c, id, hyb_err_to_status(r), e && e->message[0] ? e->message : hyb_strerror(r), NULL, 0, 0);
}

static const char *str(json_t *j, const char *key)
{
        return json_string_value(json_object_get(j, key));
}

/* The largest argument policy (JSON text) a registration may store. */
#define POLICY_TEXT_MAX (64u * 1024)

/* forHost / forApp: absent or null means "*"; any other non-string is a 400, never
 * silently "*" (that would open a procedure the registrant meant to restrict). */
static int acl_param(json_t *p, const char *key, const char **ret, hyb_error *e)
{
        json_t *v = json_object_get(p, key);

        *ret = NULL;
        if (!v || json_is_null(v))
                return 0;
        if (!json_is_string(v))
                return err_set(e, HYB_E_BAD_REQUEST, -1, "%s must be a string", key);
        *ret = json_string_value(v);
        return 0;
}

static int do_register_procedure(bconn *c, json_t *p, hyb_error *e)
{
        const char *name = str(p, "methodName");
        json_t *policy = json_object_get(p, "policy");
        bproc *pr;
        int r;

        if (!name)
                return err_set(e, HYB_E_BAD_REQUEST, -1, "methodName missing");
        r = bus_name_check_ident(name, strlen(name), e);
        if (r < 0)
                return r;
        for (pr = c->procs; pr; pr = pr->next)
                if (bus_name_equal(pr->name, strlen(pr->name), name, strlen(name)))
                        return err_set(e, HYB_E_CONFLICT, -1, "procedure %s already registered", name);
        if (c->n_regs >= c->b->c->max_subscriptions)
                return err_set(e, HYB_E_TOO_MANY, -1, "too many registrations");
        unsigned uid_subs, uid_regs;
        size_t uid_policy;
        quota_uid_objects(c, &uid_subs, &uid_regs, &uid_policy);
        if (uid_regs >= c->b->c->uid_max_registrations)
                return err_set(e, HYB_E_TOO_MANY, -1, "quota uid_max_registrations exceeded");
        if (policy && !json_is_array(policy))
                return err_set(e, HYB_E_BAD_REQUEST, -1, "policy must be an array");
        const char *hosts, *apps;
        if ((r = acl_param(p, "forHost", &hosts, e)) < 0 || (r = acl_param(p, "forApp", &apps, e)) < 0)
                return r;
        pr = calloc(1, sizeof *pr);
        if (!pr)
                return -ENOMEM;
        if ((r = bus_acl_compile(hosts, &pr->hosts, e)) < 0 ||
            (r = bus_acl_compile(apps, &pr->apps, e)) < 0) {
                bus_acl_free(pr->hosts);
                free(pr);
                return r;
        }
        pr->name = strdup(name);
        pr->name_len = strlen(name);
        pr->policy = policy ? json_dumps(policy, JSON_COMPACT) : strdup("[]");
        if (pr->policy && strlen(pr->policy) > POLICY_TEXT_MAX) {
                free(pr->name);
                free(pr->policy);
                bus_acl_free(pr->hosts);
                bus_acl_free(pr->apps);
                free(pr);
                return err_set(e, HYB_E_TOO_LARGE, -1, "policy longer than %u bytes", POLICY_TEXT_MAX);
        }
        if (pr->policy && uid_policy + strlen(pr->policy) > c->b->c->uid_max_policy_bytes) {
                free(pr->name);
                free(pr->policy);
                bus_acl_free(pr->hosts);
                bus_acl_free(pr->apps);
                free(pr);
                return err_set(e, HYB_E_INSUFFICIENT_STORAGE, -1, "quota uid_max_policy_bytes exceeded");
        }
        if (!pr->name || !pr->policy) {
                free(pr->name);
                free(pr->policy);
                bus_acl_free(pr->hosts);
                bus_acl_free(pr->apps);
                free(pr);
                return -ENOMEM;
        }
        pr->next = c->procs;
        c->procs = pr;
        c->n_regs++;
        c->policy_bytes += strlen(pr->policy);
        return 0;
}

static int do_revoke_procedure(bconn *c, json_t *p, hyb_error *e)
{
        const char *name = str(p, "methodName");
        if (!name)
                return err_set(e, HYB_E_BAD_REQUEST, -1, "methodName missing");
        for (bproc **pp = &c->procs; *pp; pp = &(*pp)->next) {
                bproc *pr = *pp;
                if (bus_name_equal(pr->name, strlen(pr->name), name, strlen(name))) {
                        *pp = pr->next;
                        c->n_regs--;
                        c->policy_bytes -= strlen(pr->policy);
                        free(pr->name);
                        free(pr->policy);
                        bus_acl_free(pr->hosts);
                        bus_acl_free(pr->apps);
                        free(pr);
                        return 0;
                }
        }
        return err_set(e, HYB_E_NOT_FOUND, -1, "no procedure %s", name);
}

/* Endpoints the caller may see: admins all; others those offering something they may use. */
static bool may_see(bconn *c, bconn *ep)
{
        if (c->admin || ep == c || ep->builtin)
                return true;
        for (bproc *p = ep->procs; p; p = p->next)
                if (route_acl(ep, p->hosts, p->apps, c))
                        return true;
        for (bbubble *bb = ep->bubbles; bb; bb = bb->next)
                if (route_acl(ep, bb->hosts, bb->apps, c))
                        return true;
        return false;
}

static json_t *list_endpoints(bconn *c)
{
        hyb_broker *b = c->b;
        json_t *a = json_array();
        bconn *all[2] = { b->builtin, b->conns };

        for (int k = 0; k < 2; k++)
                for (bconn *ep = all[k]; ep; ep = k ? ep->next : NULL) {
                        if (ep->state != BCONN_READY || !may_see(c, ep))
                                continue;
                        json_t *o = json_pack("{s:s}", "endpointName", ep->name);
                        json_t *m = json_array(), *ev = json_array();
                        for (bproc *p = ep->procs; p; p = p->next)
                                if (c->admin || route_acl(ep, p->hosts, p->apps, c))
                                        json_array_append_new(m, json_string(p->name));
                        for (bbubble *bb = ep->bubbles; bb; bb = bb->next)
                                if (c->admin || route_acl(ep, bb->hosts, bb->apps, c))
                                        json_array_append_new(ev, json_string(bb->name));
                        json_object_set_new(o, "methods", m);
                        json_object_set_new(o, "bubbles", ev);
                        if (c->admin && !ep->builtin) {
                                json_object_set_new(o, "uid", json_integer(ep->uid));
                                json_object_set_new(o, "pid", json_integer(ep->pid));
                                json_object_set_new(o, "pendingCalls", json_integer(ep->n_out));
                                json_object_set_new(o, "subscriptions", json_integer(ep->n_subs));
                        }
                        json_array_append_new(a, o);
                }
        return a;
}

static json_t *list_members(bconn *c, json_t *p, bool events)
{
        hyb_broker *b = c->b;
        const char *filter = str(p, "endpointName");
        json_t *a = json_array();
        bconn *all[2] = { b->builtin, b->conns };
        char full[WIRE_ENDPOINT_MAX + WIRE_MEMBER_MAX + 2];

        for (int k = 0; k < 2; k++)
                for (bconn *ep = all[k]; ep; ep = k ? ep->next : NULL) {
                        if (ep->state != BCONN_READY)
                                continue;
                        if (filter && !bus_glob_match(filter, strlen(filter), ep->name, ep->name_len))
                                continue;
                        if (!events) {
                                for (bproc *pr = ep->procs; pr; pr = pr->next) {
                                        if (!route_acl(ep, pr->hosts, pr->apps, c))
                                                continue;
                                        snprintf(full, sizeof full, "%s/%s", ep->name, pr->name);
                                        json_array_append_new(
                                                a, json_pack("{s:s, s:s, s:s, s:o}", "procedureName", full,
                                                             "forHost", bus_acl_text(pr->hosts), "forApp",
                                                             bus_acl_text(pr->apps), "policy",
                                                             json_loads(pr->policy, 0, NULL)));
                                }
                        } else {
                                for (bbubble *bb = ep->bubbles; bb; bb = bb->next) {
                                        if (!route_acl(ep, bb->hosts, bb->apps, c))
                                                continue;
                                        snprintf(full, sizeof full, "%s/%s", ep->name, bb->name);
                                        json_array_append_new(a, json_pack("{s:s, s:s, s:s}", "eventName", full,
                                                                           "forHost", bus_acl_text(bb->hosts),
                                                                           "forApp", bus_acl_text(bb->apps)));
                                }
                        }
                }
        return a;
}

static int list_subscribers(bconn *c, json_t *p, json_t **ret, hyb_error *e)
{
        const char *ep = str(p, "endpointName"), *bubble = str(p, "bubbleName");
        bconn *gen = ep ? broker_lookup(c->b, ep, strlen(ep)) : c;
        bbubble *bb;

        if (!bubble)
                return err_set(e, HYB_E_BAD_REQUEST, -1, "bubbleName missing");
        if (!gen || !(bb = events_find_bubble(gen, bubble, strlen(bubble))))
                return err_set(e, HYB_E_NOT_FOUND, -1, "no such event");
        if (gen != c && !c->admin)
                return err_set(e, HYB_E_FORBIDDEN, -1, "only the generator or an administrator may list subscribers");
        *ret = json_array();
        for (size_t i = 0; i < bb->n_subs; i++)
                if (bb->subs[i].conn->state == BCONN_READY)
                        json_array_append_new(*ret, json_string(bb->subs[i].conn->name));
        return 0;
}

void builtin_call(bconn *c, bframe *f)
{
        char method[64];
        uint64_t id = f->h.call_id;
        hyb_error e = { 0 };
        json_t *p, *res = NULL;
        int r = 0;

        if (f->h.member_len >= sizeof method) {
                route_reply(c, id, 404, "no such builtin method", NULL, 0, 0);
                return;
        }
        memcpy(method, f->member, f->h.member_len);
        method[f->h.member_len] = 0;

        if (!strcasecmp(method, "echo")) {
                /* Zero-copy: the body goes back as is, JSON or binary, any size up to the limit. */
                static const char bi[] = "@localhost/org.hybridos.bus/builtin";
                uint8_t buf[WIRE_HDR_SIZE + WIRE_NAMES_MAX];
                struct iovec iov[2];
                wire_hdr h = { .type = WIRE_RESULT, .flags = f->h.flags & WIRE_F_BINARY, .status = 200,
                               .call_id = id };
                if (!bconn_room(c, f->len + 2 * WIRE_ENDPOINT_MAX))
                        return;
                wire_build(&h, bi, sizeof bi - 1, c->name, c->name_len, NULL, 0, NULL, f->h.body_len, buf, iov);
                if (c->b->n_monitors)
                        monitor_copy(c->b, WIRE_RESULT, &h, bi, sizeof bi - 1, c->name, c->name_len, NULL, 0,
                                     bframe_body(f), f->h.body_len);
                bconn_forward(c, buf, iov[0].iov_len, f);
                return;
        }
        if (f->h.flags & WIRE_F_BINARY) {
                route_reply(c, id, 400, "builtin methods take JSON params", NULL, 0, 0);
                return;
        }
        const uint8_t *body = bframe_body(f);
        json_error_t jerr;
        p = f->h.body_len ? json_loadb((const char *)body, f->h.body_len, 0, &jerr) : json_object();
        if (!p || !json_is_object(p)) {
                json_decref(p);
                route_reply(c, id, 400, "params must be a JSON object", NULL, 0, 0);
                return;
        }

        if (!strcasecmp(method, "registerProcedure"))
                r = do_register_procedure(c, p, &e);
        else if (!strcasecmp(method, "revokeProcedure"))
                r = do_revoke_procedure(c, p, &e);
        else if (!strcasecmp(method, "registerEvent")) {
                const char *n = str(p, "bubbleName"), *hosts, *apps;
                if (!n)
                        r = err_set(&e, HYB_E_BAD_REQUEST, -1, "bubbleName missing");
                else if ((r = acl_param(p, "forHost", &hosts, &e)) >= 0 &&
                         (r = acl_param(p, "forApp", &apps, &e)) >= 0)
                        r = events_register(c, n, hosts, apps, &e);
        } else if (!strcasecmp(method, "revokeEvent")) {
                const char *n = str(p, "bubbleName");
                r = n ? events_revoke(c, n) : err_set(&e, HYB_E_BAD_REQUEST, -1, "bubbleName missing");
        } else if (!strcasecmp(method, "subscribeEvent") || !strcasecmp(method, "unsubscribeEvent")) {
                const char *ep = str(p, "endpointName"), *bb = str(p, "bubbleName");
                if (!ep || !bb)
                        r = err_set(&e, HYB_E_BAD_REQUEST, -1, "endpointName and bubbleName required");
                else if (method[0] == 's' || method[0] == 'S')
                        r = events_subscribe(c, ep, bb, &e);
                else
                        r = events_unsubscribe(c, ep, bb);
        } else if (!strcasecmp(method, "listEndpoints"))
                res = list_endpoints(c);
        else if (!strcasecmp(method, "listProcedures"))
                res = list_members(c, p, false);
        else if (!strcasecmp(method, "listEvents"))
                res = list_members(c, p, true);
        else if (!strcasecmp(method, "listEventSubscribers"))
                r = list_subscribers(c, p, &res, &e);
        else if (!strcasecmp(method, "terminateCall")) {
                json_t *v = json_object_get(p, "callId");
                if (!json_is_integer(v) || json_integer_value(v) < 0)
                        r = err_set(&e, HYB_E_BAD_REQUEST, -1, "callId must be a non-negative integer");
                else
                        r = route_terminate(c, (uint64_t)json_integer_value(v));
        } else if (!strcasecmp(method, "monitor")) {
                bool on = json_is_true(json_object_get(p, "enable"));
                if (!c->admin)
                        r = err_set(&e, HYB_E_FORBIDDEN, -1, "monitor is for administrators");
                else if (on != c->monitor) {
                        c->monitor = on;
                        c->b->n_monitors += on ? 1 : -1;
                }
        } else
                r = err_set(&e, HYB_E_NOT_FOUND, -1, "no such builtin method: %s", method);
        json_decref(p);
        if (r < 0) {
                json_decref(res);
                reply_err(c, id, r, &e);
        } else if (res)
                reply_json(c, id, res);
        else
                route_reply(c, id, 200, NULL, "{}", 2, 0);
}
