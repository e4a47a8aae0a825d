/* SPDX-License-Identifier: MIT */
/*
 * hybrid list [<endpoint>] [--json]
 *
 * What the caller may use, from the builtin listEndpoints, listProcedures and
 * listEvents, each followed page by page to its end.  Text form, one block per endpoint:
 *   @localhost/org.example.thermo/main
 *     procedure getTemperature  forHost=* forApp=*  args(unit?:string)
 *     event TEMP  forHost=* forApp=*
 * With --json, one document: [{"endpointName", (uid, pid for administrators),
 * "procedures":[listProcedures entries], "events":[listEvents entries]}, ...].
 */
#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include <hybrid/hybrid.h>

#include "cli-bus.h"

static const char *const type_names[] = { "any", "string", "integer", "number",
                                          "boolean", "object", "array", "null" };

/* Calls a builtin method and parses its JSON result; prints the error and returns the exit status. */
static int builtin(hyb_bus *bus, const char *method, json_t *params, json_t **ret)
{
        hyb_bus_reply *reply = NULL;
        hyb_error e;
        json_error_t je;
        const void *body;
        size_t len;
        char *text = json_dumps(params, JSON_COMPACT);
        int r;

        *ret = NULL;
        if (!text)
                return cli_fail(EXIT_FAILED, "list", "ENOMEM", "out of memory");
        hyb_error_clear(&e);
        r = hyb_bus_call_builtin(bus, method, text, &reply, &e);
        free(text);
        if (r < 0)
                return clibus_fail(clibus_exit_status(r), "list", r, &e);
        body = hyb_bus_reply_get_body(reply, &len);
        *ret = json_loadb(body, len, JSON_DECODE_ANY, &je);
        hyb_bus_reply_unref(reply);
        if (!*ret)
                return cli_fail(EXIT_FAILED, "list", "HYB_E_PROTOCOL", "%s answered something other than JSON",
                                method);
        return 0;
}

/*
 * The whole list, page by page (doc/protocol.md "List pages"): each page is
 * {"items":[...],"next":cursor}; the last one has no "next".
 */
static int builtin_list(hyb_bus *bus, const char *method, json_t *params, json_t **ret)
{
        json_t *all = json_array(), *page = NULL, *p = json_deep_copy(params);
        int st = 0;

        *ret = NULL;
        if (!all || !p || json_object_set_new(p, "limit", json_integer(1000)) < 0) {
                st = cli_fail(EXIT_FAILED, "list", "ENOMEM", "out of memory");
                goto out;
        }
        for (;;) {
                json_t *items, *next;

                st = builtin(bus, method, p, &page);
                if (st)
                        goto out;
                items = json_object_get(page, "items");
                next = json_object_get(page, "next");
                if (!json_is_array(items) || (next && !json_is_string(next))) {
                        st = cli_fail(EXIT_FAILED, "list", "HYB_E_PROTOCOL",
                                      "%s answered something other than a page", method);
                        goto out;
                }
                json_array_extend(all, items);
                if (!next)
                        break;
                json_object_set(p, "cursor", next);
                json_decref(page);
                page = NULL;
        }
        *ret = all;
        all = NULL;
out:
        json_decref(page);
        json_decref(p);
        json_decref(all);
        return st;
}

static const char *short_name(const char *full)
{
        const char *slash = full ? strrchr(full, '/') : NULL;

        return slash ? slash + 1 : full ? full : "?";
}

static const char *str_of(json_t *o, const char *key)
{
        const char *s = json_string_value(json_object_get(o, key));

        return s ? s : "*";
}

static void print_policy(json_t *policy)
{
        size_t i;
        json_t *a;

        if (!json_is_array(policy) || json_array_size(policy) == 0)
                return; /* no policy: any params */
        printf("  args(");
        json_array_foreach(policy, i, a) {
                json_t *t = json_object_get(a, "type"), *req = json_object_get(a, "required");
                const char *type = json_string_value(t);
                bool required = json_is_true(req) || (json_is_integer(req) && json_integer_value(req));

                if (!type && json_is_integer(t) && json_integer_value(t) >= 0 &&
                    json_integer_value(t) < 8)
                        type = type_names[json_integer_value(t)];
                printf("%s%s%s:%s", i ? ", " : "", json_string_value(json_object_get(a, "key")),
                       required ? "" : "?", type ? type : "any");
        }
        printf(")");
}

static void print_text(json_t *all)
{
        size_t i, j;
        json_t *ep, *x;

        json_array_foreach(all, i, ep) {
                json_t *uid = json_object_get(ep, "uid"), *pid = json_object_get(ep, "pid");

                printf("%s", str_of(ep, "endpointName"));
                if (json_is_integer(uid) && json_is_integer(pid))
                        printf("  (uid %lld, pid %lld)", (long long)json_integer_value(uid),
                               (long long)json_integer_value(pid));
                printf("\n");
                json_array_foreach(json_object_get(ep, "procedures"), j, x) {
                        printf("  procedure %s  forHost=%s forApp=%s",
                               short_name(json_string_value(json_object_get(x, "procedureName"))),
                               str_of(x, "forHost"), str_of(x, "forApp"));
                        print_policy(json_object_get(x, "policy"));
                        printf("\n");
                }
                json_array_foreach(json_object_get(ep, "events"), j, x)
                        printf("  event %s  forHost=%s forApp=%s\n",
                               short_name(json_string_value(json_object_get(x, "eventName"))),
                               str_of(x, "forHost"), str_of(x, "forApp"));
                fflush(stdout);
        }
}

/* Adds "procedures" and "events" to an endpoint entry. */
static int fill(hyb_bus *bus, json_t *ep)
{
        json_t *params = json_pack("{s:O}", "endpointName", json_object_get(ep, "endpointName"));
        json_t *procs = NULL, *events = NULL;
        int st;

        if (!params)
                return cli_fail(EXIT_FAILED, "list", "ENOMEM", "out of memory");
        st = builtin_list(bus, "listProcedures", params, &procs);
        if (!st)
                st = builtin_list(bus, "listEvents", params, &events);
        json_decref(params);
        if (!st) {
                json_object_set_new(ep, "procedures", procs);
                json_object_set_new(ep, "events", events);
        } else {
                json_decref(procs);
        }
        return st;
}

static int run_list(cli_ctx *ctx)
{
        hyb_bus *bus = NULL;
        json_t *all = NULL, *ep;
        size_t i;
        int st;

        if (ctx->nargs > 1)
                return cli_usage(ctx, "list wants at most one <endpoint>");
        if (ctx->nargs == 1 && (st = clibus_check_endpoint(ctx, ctx->args[0], true)))
                return st;
        st = clibus_connect(ctx, &bus);
        if (st)
                return st;
        {
                json_t *none = json_object();

                st = builtin_list(bus, "listEndpoints", none, &all);
                json_decref(none);
                if (st)
                        goto out;
        }
        if (ctx->nargs == 1) {
                /* the endpoints the argument names (names compare case-insensitively) */
                for (i = json_array_size(all); i-- > 0;) {
                        const char *n = json_string_value(json_object_get(json_array_get(all, i),
                                                                          "endpointName"));

                        if (!n || fnmatch(ctx->args[0], n, FNM_CASEFOLD) != 0)
                                json_array_remove(all, i);
                }
                if (json_array_size(all) == 0) {
                        st = cli_fail(EXIT_FAILED, "list", "404",
                                      "no endpoint %s (or none this client may see)", ctx->args[0]);
                        goto out;
                }
        }
        json_array_foreach(all, i, ep) {
                if (!json_is_object(ep) || !json_is_string(json_object_get(ep, "endpointName"))) {
                        st = cli_fail(EXIT_FAILED, "list", "HYB_E_PROTOCOL",
                                      "listEndpoints entry without endpointName");
                        goto out;
                }
                /* Methods and bubbles are re-listed with their policies and access lists. */
                json_object_del(ep, "methods");
                json_object_del(ep, "bubbles");
                st = fill(bus, ep);
                if (st)
                        goto out;
        }
        if (ctx->json) {
                char *s = json_dumps(all, JSON_COMPACT);

                if (!s) {
                        st = cli_fail(EXIT_FAILED, "list", "ENOMEM", "out of memory");
                        goto out;
                }
                cli_println("%s", s);
                free(s);
        } else {
                print_text(all);
        }
        st = EXIT_OK;
out:
        json_decref(all);
        hyb_bus_unref(bus);
        return st;
}

const cli_command cmd_list = {
        .name = "list",
        .run = run_list,
        .options = NULL,
        .summary = "endpoints, procedures (with argument policies) and events",
        .usage = "usage: hybrid list [<endpoint>]\n"
                 "Lists what this client may use: every endpoint, or the one named (a glob is\n"
                 "allowed).  An endpoint that is not there (or not visible) exits 1 with 404.\n"
                 "With --json: one document [{\"endpointName\",\"procedures\",\"events\"}, ...].\n",
        .globals = CLI_G_BUSCMD,
};
