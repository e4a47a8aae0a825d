/* SPDX-License-Identifier: MIT */
/*
 * bus_suite, tcase "builtin": the builtin endpoint's methods as one declarative
 * table with argument policies, names hiding a NUL byte (406, never acted on
 * as the name before the NUL), limits.max_policy_bytes, list replies in
 * bounded pages (doc/protocol.md "List pages"), and the caller info of a CALL
 * (doc/protocol.md "Frame": transport and principal at the end of `from`).
 */
#include <jansson.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include "bus/wire.h"
#include "test_bus.h"
#include "testutil.h"

#define PAGE_BYTES (256u * 1024) /* doc/protocol.md: a list reply body is at most 256 KiB */

/* ---------------------------------------------------------------- raw frames with explicit lengths */

/* Sends one frame whose names are given with their lengths (so they may hold NUL bytes). */
static void raw_send(int fd, wire_hdr *h, const char *to, size_t to_len, const char *member, size_t member_len,
                     const char *body)
{
        uint8_t buf[WIRE_HDR_SIZE + WIRE_NAMES_MAX];
        struct iovec iov[2];
        size_t bl = body ? strlen(body) : 0;
        int n = wire_build(h, NULL, 0, to, to_len, member, member_len, body, bl, buf, iov);
        size_t total = iov[0].iov_len + (n > 1 ? iov[1].iov_len : 0);

        ck_assert_int_eq(writev(fd, iov, n), (ssize_t)total);
}

/* Reads frames until the RESULT of call id; returns its status (the body, if wanted, malloc'd). */
static int raw_result(int fd, uint64_t id, char **ret_body)
{
        for (;;) {
                uint8_t hb[WIRE_HDR_SIZE];
                wire_hdr h;

                ck_assert_int_eq(raw_read_exact(fd, hb, sizeof hb, 3000), 0);
                ck_assert_int_eq(wire_hdr_decode(hb, &h), 0);
                size_t names = wire_names_len(&h), n = names + h.body_len;
                char *rest = malloc(n + 1);
                ck_assert_ptr_nonnull(rest);
                ck_assert_int_eq(raw_read_exact(fd, rest, n, 3000), 0);
                rest[n] = 0;
                if (h.type == WIRE_RESULT && h.call_id == id) {
                        if (ret_body)
                                *ret_body = strdup(rest + names);
                        free(rest);
                        return h.status;
                }
                free(rest);
        }
}

static int raw_call(int fd, uint64_t id, const char *to, size_t to_len, const char *member, size_t member_len,
                    const char *body, char **ret_body)
{
        wire_hdr h = { .type = WIRE_CALL, .call_id = id, .timeout_ms = 2000 };

        raw_send(fd, &h, to, to_len, member, member_len, body);
        return raw_result(fd, id, ret_body);
}

static int builtin_raw(int fd, uint64_t id, const char *method, size_t len, const char *body)
{
        return raw_call(fd, id, HYB_BUS_BUILTIN_ENDPOINT, strlen(HYB_BUS_BUILTIN_ENDPOINT), method, len, body,
                        NULL);
}

/* ---------------------------------------------------------------- NUL in names */

START_TEST(test_builtin_nul_names)
{
        tbroker t;
        char *body = NULL;
        tb_start(&t, NULL, false);
        int fd = raw_connect(&t, "org.test.nul", "main", true);

        /* The finding: "echo\0junk" ran as echo. */
        ck_assert_int_eq(builtin_raw(fd, 1, "echo\0junk", 9, "{\"x\":1}"), 406);
        ck_assert_int_eq(builtin_raw(fd, 2, "registerEvent\0x", 15, "{\"bubbleName\":\"B\"}"), 406);
        /* The name itself still works, in any ASCII case (hiBus), and an unknown one is 404. */
        ck_assert_int_eq(raw_call(fd, 3, HYB_BUS_BUILTIN_ENDPOINT, strlen(HYB_BUS_BUILTIN_ENDPOINT), "ECHO", 4,
                                  "{\"x\":1}", &body), 200);
        ck_assert_str_eq(body, "{\"x\":1}");
        free(body);
        ck_assert_int_eq(builtin_raw(fd, 4, "noSuchMethod", 12, "{}"), 404);

        /* Names inside the params: "\u0000" is a name with a NUL, not a shorter name. */
        ck_assert_int_eq(builtin_raw(fd, 10, "registerProcedure", 17, "{\"methodName\":\"m\\u0000x\"}"), 406);
        ck_assert_int_eq(builtin_raw(fd, 11, "registerProcedure", 17,
                                     "{\"methodName\":\"m\",\"forApp\":\"org.test.a\\u0000,*\"}"),
                         406);
        ck_assert_int_eq(builtin_raw(fd, 12, "registerEvent", 13, "{\"bubbleName\":\"B\\u0000x\"}"), 406);
        ck_assert_int_eq(builtin_raw(fd, 13, "registerEvent", 13, "{\"bubbleName\":\"B\",\"forHost\":\"a\\u0000\"}"),
                         406);
        ck_assert_int_eq(builtin_raw(fd, 14, "subscribeEvent", 14,
                                     "{\"endpointName\":\"@localhost/org.test.nul/main\\u0000x\","
                                     "\"bubbleName\":\"B\"}"),
                         406);
        ck_assert_int_eq(builtin_raw(fd, 15, "listProcedures", 14, "{\"endpointName\":\"@local\\u0000\"}"), 406);
        /* None of them registered anything under the shorter name. */
        ck_assert_int_eq(builtin_raw(fd, 16, "revokeProcedure", 15, "{\"methodName\":\"m\"}"), 404);
        ck_assert_int_eq(builtin_raw(fd, 17, "revokeEvent", 11, "{\"bubbleName\":\"B\"}"), 404);

        /* Names in the header of calls and events to an endpoint. */
        ck_assert_int_eq(builtin_raw(fd, 20, "registerProcedure", 17, "{\"methodName\":\"m\"}"), 200);
        ck_assert_int_eq(builtin_raw(fd, 21, "registerEvent", 13, "{\"bubbleName\":\"B\"}"), 200);
        static const char self[] = "@localhost/org.test.nul/main";
        ck_assert_int_eq(raw_call(fd, 22, self, sizeof self - 1, "m\0x", 3, "{}", NULL), 406);
        ck_assert_int_eq(raw_call(fd, 23, "@localhost/org.test.nul/main\0x", sizeof self + 1, "m", 1, "{}", NULL),
                         406);
        wire_hdr ev = { .type = WIRE_EVENT, .flags = WIRE_F_COUNTS, .call_id = 24 };
        raw_send(fd, &ev, NULL, 0, "B\0x", 3, "{}");
        ck_assert_int_eq(raw_result(fd, 24, NULL), 406);
        ev = (wire_hdr){ .type = WIRE_EVENT, .flags = WIRE_F_COUNTS, .call_id = 25 };
        raw_send(fd, &ev, NULL, 0, "B", 1, "{}");
        ck_assert_int_eq(raw_result(fd, 25, NULL), 200);
        close(fd);

        /* The name an endpoint claims: runner "main\u0000x" is refused (406), not "main". */
        fd = raw_connect(&t, NULL, NULL, false);
        static const char auth[] =
                "{\"protocol\":\"HYBRID\",\"version\":1,\"app\":\"org.test.nul2\",\"runner\":\"main\\u0000x\"}";
        wire_hdr ah = { .type = WIRE_AUTH };
        raw_send(fd, &ah, NULL, 0, NULL, 0, auth);
        int st = 0;
        ck_assert_int_eq(raw_read_frame(fd, &st, 2000), WIRE_AUTH_RESULT);
        ck_assert_int_eq(st, 406);
        close(fd);
        tb_stop(&t);
}
END_TEST

/* ---------------------------------------------------------------- the declarative table */

START_TEST(test_builtin_policies)
{
        tbroker t;
        hyb_error err;
        tb_start(&t, NULL, false);
        hyb_bus *a = tb_connect(&t, "org.test.a", "main");

        /* The argument policy answers before any handler runs, naming the key. */
        static const struct {
                const char *method, *params, *key;
        } bad[] = {
                { "registerProcedure", "{}", "methodName" },
                { "registerProcedure", "{\"methodName\":7}", "methodName" },
                { "registerProcedure", "{\"methodName\":\"m\",\"policy\":{}}", "policy" },
                { "revokeProcedure", "{}", "methodName" },
                { "registerEvent", "{\"bubbleName\":[]}", "bubbleName" },
                { "subscribeEvent", "{\"endpointName\":\"@localhost/a/b\"}", "bubbleName" },
                { "unsubscribeEvent", "{\"bubbleName\":\"B\"}", "endpointName" },
                { "listProcedures", "{\"endpointName\":1}", "endpointName" },
                { "listEvents", "{\"limit\":\"10\"}", "limit" },
                { "listEndpoints", "{\"cursor\":5}", "cursor" },
                { "listEventSubscribers", "{}", "bubbleName" },
                { "terminateCall", "{\"callId\":\"7\"}", "callId" },
                { "monitor", "{\"enable\":1}", "enable" },
        };
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
                hyb_error_clear(&err);
                ck_assert_msg(hyb_bus_call_builtin(a, bad[i].method, bad[i].params, NULL, &err) == HYB_E_BAD_REQUEST,
                              "%s %s", bad[i].method, bad[i].params);
                ck_assert_msg(strstr(err.message, bad[i].key), "%s: message '%s' does not name %s", bad[i].method,
                              err.message, bad[i].key);
        }
        /* A policy has the shape doc/protocol.md gives it. */
        static const char *const policies[] = {
                "[1]", "[{}]", "[{\"key\":\"\"}]", "[{\"key\":7}]", "[{\"key\":\"a\",\"type\":\"float\"}]",
                "[{\"key\":\"a\",\"type\":8}]", "[{\"key\":\"a\",\"required\":\"yes\"}]",
                "[{\"key\":\"a\",\"required\":2}]",
        };
        for (size_t i = 0; i < sizeof policies / sizeof policies[0]; i++) {
                char p[256];
                snprintf(p, sizeof p, "{\"methodName\":\"m\",\"policy\":%s}", policies[i]);
                hyb_error_clear(&err);
                ck_assert_msg(hyb_bus_call_builtin(a, "registerProcedure", p, NULL, &err) == HYB_E_BAD_REQUEST,
                              "policy %s accepted", policies[i]);
                ck_assert_ptr_nonnull(strstr(err.message, "policy entry 0"));
        }
        ck_assert_int_eq(hyb_bus_call_builtin(a, "registerProcedure",
                                              "{\"methodName\":\"ok\",\"policy\":[{\"key\":\"a\"},"
                                              "{\"key\":\"b\",\"type\":\"integer\",\"required\":true},"
                                              "{\"key\":\"c\",\"type\":2,\"required\":0}]}",
                                              NULL, &err),
                         0);

        /* Paging parameters out of range. */
        ck_assert_int_eq(hyb_bus_call_builtin(a, "listProcedures", "{\"limit\":0}", NULL, &err), HYB_E_BAD_REQUEST);
        ck_assert_int_eq(hyb_bus_call_builtin(a, "listProcedures", "{\"limit\":1001}", NULL, &err),
                         HYB_E_BAD_REQUEST);
        static const char *const cursors[] = { "", "1", "-1", "1-", "x-1", "1-1-1", "FF-1", "0x1-1",
                                               "11111111111111111-1", " 1-1" };
        for (size_t i = 0; i < sizeof cursors / sizeof cursors[0]; i++) {
                char p[96];
                snprintf(p, sizeof p, "{\"cursor\":\"%s\"}", cursors[i]);
                ck_assert_msg(hyb_bus_call_builtin(a, "listEndpoints", p, NULL, &err) == HYB_E_BAD_REQUEST,
                              "cursor '%s' accepted", cursors[i]);
        }
        /* Method names fold ASCII case as before; the checked call still does its work. */
        ck_assert_int_eq(hyb_bus_call_builtin(a, "REGISTERPROCEDURE", "{\"methodName\":\"m\",\"forApp\":null}", NULL,
                                              &err), 0);
        ck_assert_int_eq(hyb_bus_call_builtin(a, "registerProcedure", "{\"methodName\":\"m\"}", NULL, &err),
                         HYB_E_CONFLICT);
        ck_assert_int_eq(hyb_bus_call_builtin(a, "revokeProcedure", "{\"methodName\":\"M\"}", NULL, &err), 0);
        ck_assert_int_eq(hyb_bus_call_builtin(a, "terminateCall", "{\"callId\":-1}", NULL, &err), HYB_E_BAD_REQUEST);
        ck_assert_int_eq(hyb_bus_call_builtin(a, "terminateCall", "{\"callId\":12345}", NULL, &err), HYB_E_NOT_FOUND);
        ck_assert_int_eq(hyb_bus_call_builtin(a, "noSuchMethod", "{}", NULL, &err), HYB_E_NOT_FOUND);
        hyb_bus_unref(a);
        tb_stop(&t);
}
END_TEST

/* ---------------------------------------------------------------- max_policy_bytes */

/* {"methodName":name,"policy":[...]} whose policy's compact text is exactly n bytes (n >= 40). */
static char *register_params(const char *name, size_t n)
{
        /* [{"key":"k","type":"any","required":false}] is 43 bytes; pad the key. */
        static const char fixed[] = "[{\"key\":\"\",\"type\":\"any\",\"required\":false}]";
        size_t pad = n - (sizeof fixed - 1);
        char *key = malloc(pad + 1), *out = malloc(n + 128);

        memset(key, 'k', pad);
        key[pad] = 0;
        snprintf(out, n + 128, "{\"methodName\":\"%s\",\"policy\":[{\"key\":\"%s\",\"type\":\"any\",\"required\":false}]}",
                 name, key);
        free(key);
        return out;
}

START_TEST(test_max_policy_bytes)
{
        hyb_broker_config *cfg;
        hyb_error err;
        uint64_t v;
        tbroker t;

        /* The default bounds a registration to 4 KiB of policy; YAML and the setter reach it. */
        ck_assert_int_eq(hyb_broker_config_new(&cfg), 0);
        ck_assert_int_eq(hyb_broker_config_get_limit(cfg, "max_policy_bytes", &v), 0);
        ck_assert_uint_eq(v, 4096);
        static const char yaml[] = "limits:\n  max_policy_bytes: 8K\n";
        ck_assert_int_eq(hyb_broker_config_load_string(cfg, yaml, sizeof yaml - 1, &err), 0);
        ck_assert_int_eq(hyb_broker_config_get_limit(cfg, "max_policy_bytes", &v), 0);
        ck_assert_uint_eq(v, 8192);
        static const char zero[] = "limits:\n  max_policy_bytes: 0\n";
        ck_assert_int_lt(hyb_broker_config_load_string(cfg, zero, sizeof zero - 1, &err), 0);
        ck_assert_int_eq(hyb_broker_config_set_limit(cfg, "max_policy_bytes", 100), 0);
        ck_assert_int_eq(hyb_broker_config_get_limit(cfg, "max_policy_bytes", &v), 0);
        ck_assert_uint_eq(v, 100);
        hyb_broker_config_unref(cfg);

        tb_start(&t, "max_policy_bytes=600", false);
        hyb_bus *a = tb_connect(&t, "org.test.a", "main");
        char *p = register_params("fits", 600);
        ck_assert_int_eq(hyb_bus_call_builtin(a, "registerProcedure", p, NULL, &err), 0);
        free(p);
        p = register_params("over", 601);
        ck_assert_int_eq(hyb_bus_call_builtin(a, "registerProcedure", p, NULL, &err), HYB_E_TOO_LARGE);
        ck_assert_ptr_nonnull(strstr(err.message, "max_policy_bytes"));
        free(p);
        ck_assert_int_eq(hyb_bus_call_builtin(a, "revokeProcedure", "{\"methodName\":\"over\"}", NULL, &err),
                         HYB_E_NOT_FOUND);
        hyb_bus_unref(a);
        tb_stop(&t);
}
END_TEST

/* ---------------------------------------------------------------- list pages */

/* One page: the parsed body (caller decrefs); asserts 200 and the page bound. */
static json_t *page_of(hyb_bus *bus, const char *method, const char *params)
{
        hyb_bus_reply *rep = NULL;
        hyb_error err;
        size_t len;

        ck_assert_msg(hyb_bus_call_builtin(bus, method, params, &rep, &err) == 0, "%s %s: %s", method, params,
                      err.message);
        const char *body = hyb_bus_reply_get_body(rep, &len);
        ck_assert_uint_le(len, PAGE_BYTES);
        json_t *j = json_loadb(body, len, 0, NULL);
        hyb_bus_reply_unref(rep);
        ck_assert(json_is_object(j));
        ck_assert(json_is_array(json_object_get(j, "items")));
        return j;
}

/*
 * Follows a list to its end with {"limit":limit} plus extra params (",..." or "");
 * appends every entry's `key` (key NULL: the entry itself) to names; returns the number
 * of pages.  between(k) runs
 * after page k, so tests can change the bus in the middle of a listing.
 */
static int follow(hyb_bus *bus, const char *method, const char *extra, int limit, const char *key, json_t *names,
                  void (*between)(int k, void *ud), void *ud)
{
        char params[512], cursor[64] = "";
        int pages = 0;

        for (;;) {
                if (cursor[0])
                        snprintf(params, sizeof params, "{\"limit\":%d,\"cursor\":\"%s\"%s}", limit, cursor, extra);
                else
                        snprintf(params, sizeof params, "{\"limit\":%d%s}", limit, extra);
                json_t *j = page_of(bus, method, params), *v, *next;
                size_t i;
                ck_assert_uint_le(json_array_size(json_object_get(j, "items")), (size_t)limit);
                json_array_foreach(json_object_get(j, "items"), i, v)
                        json_array_append(names, key ? json_object_get(v, key) : v);
                pages++;
                next = json_object_get(j, "next");
                if (!next) {
                        json_decref(j);
                        return pages;
                }
                ck_assert(json_is_string(next));
                snprintf(cursor, sizeof cursor, "%s", json_string_value(next));
                json_decref(j);
                if (between)
                        between(pages, ud);
        }
}

static size_t count_of(json_t *names, const char *name)
{
        size_t n = 0, i;
        json_t *v;

        json_array_foreach(names, i, v)
                if (json_is_string(v) && !strcmp(json_string_value(v), name))
                        n++;
        return n;
}

static void reg(hyb_bus *bus, const char *method, const char *key, const char *name, int want)
{
        char p[400];
        hyb_error err;

        ck_assert_int_lt(snprintf(p, sizeof p, "{\"%s\":\"%s\"}", key, name), (int)sizeof p);
        ck_assert_int_eq(hyb_bus_call_builtin(bus, method, p, NULL, &err), want);
}

/* After the first page (procedures are listed newest first): p39..p33 were sent. */
static void mutate(int k, void *ud)
{
        hyb_bus *b = ud;

        if (k != 1)
                return;
        reg(b, "revokeProcedure", "methodName", "p35", 0);   /* already listed */
        reg(b, "revokeProcedure", "methodName", "p10", 0);   /* not yet listed */
        reg(b, "registerProcedure", "methodName", "late", 0); /* newer than the cursor */
}

START_TEST(test_list_pages)
{
        tbroker t;
        hyb_error err;
        char name[160];
        tb_start(&t, NULL, false);
        hyb_bus *b = tb_connect(&t, "org.test.many", "main");
        hyb_bus *a = tb_connect(&t, "org.test.a", "main");
        static const char bname[] = "@localhost/org.test.many/main";

        for (int i = 0; i < 40; i++) {
                snprintf(name, sizeof name, "p%02d", i);
                reg(b, "registerProcedure", "methodName", name, 0);
        }
        for (int i = 0; i < 7; i++) {
                snprintf(name, sizeof name, "E%d", i);
                reg(b, "registerEvent", "bubbleName", name, 0);
        }

        /* 40 procedures, 7 a page: 6 pages, each entry once. */
        json_t *names = json_array();
        ck_assert_int_eq(follow(a, "listProcedures", ",\"endpointName\":\"@localhost/org.test.many/main\"", 7,
                                "procedureName", names, NULL, NULL), 6);
        ck_assert_uint_eq(json_array_size(names), 40);
        for (int i = 0; i < 40; i++) {
                snprintf(name, sizeof name, "%s/p%02d", bname, i);
                ck_assert_uint_eq(count_of(names, name), 1);
        }
        json_decref(names);

        /* The same through a glob filter and through no filter at all. */
        names = json_array();
        follow(a, "listProcedures", ",\"endpointName\":\"@localhost/org.test.m*\"", 3, "procedureName", names, NULL,
               NULL);
        ck_assert_uint_eq(json_array_size(names), 40);
        json_decref(names);
        names = json_array();
        follow(a, "listProcedures", "", 1000, "procedureName", names, NULL, NULL);
        ck_assert_uint_eq(json_array_size(names), 40);
        json_decref(names);

        /* The bus changes between pages: nothing is listed twice, nothing that stayed is lost,
         * what went before its turn is not listed. */
        names = json_array();
        follow(a, "listProcedures", "", 7, "procedureName", names, mutate, b);
        ck_assert_uint_eq(count_of(names, "@localhost/org.test.many/main/p35"), 1);
        ck_assert_uint_eq(count_of(names, "@localhost/org.test.many/main/p10"), 0);
        for (int i = 0; i < 40; i++) {
                if (i == 35 || i == 10)
                        continue;
                snprintf(name, sizeof name, "%s/p%02d", bname, i);
                ck_assert_msg(count_of(names, name) == 1, "%s listed %zu times", name, count_of(names, name));
        }
        json_decref(names);

        /* Events: the 7 bubbles of one endpoint, 2 a page; the builtin's 6 over every endpoint. */
        names = json_array();
        ck_assert_int_eq(follow(a, "listEvents", ",\"endpointName\":\"@localhost/org.test.many/main\"", 2,
                                "eventName", names, NULL, NULL), 4);
        ck_assert_uint_eq(json_array_size(names), 7);
        json_decref(names);
        names = json_array();
        follow(a, "listEvents", "", 1, "eventName", names, NULL, NULL);
        ck_assert_uint_eq(json_array_size(names), 13);
        ck_assert_uint_eq(count_of(names, "@localhost/org.hybridos.bus/builtin/SystemShuttingDown"), 1);
        json_decref(names);

        /* Endpoints, one a page: the builtin first, then each endpoint once. */
        names = json_array();
        ck_assert_int_eq(follow(a, "listEndpoints", "", 1, "endpointName", names, NULL, NULL), 3);
        ck_assert_str_eq(json_string_value(json_array_get(names, 0)), HYB_BUS_BUILTIN_ENDPOINT);
        ck_assert_uint_eq(count_of(names, bname), 1);
        ck_assert_uint_eq(count_of(names, "@localhost/org.test.a/main"), 1);
        json_decref(names);

        /* Subscribers of one bubble, one a page, newest connection first; the generator asks. */
        hyb_bus *c1 = tb_connect(&t, "org.test.c1", "main"), *c2 = tb_connect(&t, "org.test.c2", "main");
        hyb_bus *subs[] = { a, c1, c2 };
        for (int i = 0; i < 3; i++)
                ck_assert_int_eq(hyb_bus_call_builtin(subs[i], "subscribeEvent",
                                                      "{\"endpointName\":\"@localhost/org.test.many/main\","
                                                      "\"bubbleName\":\"E0\"}",
                                                      NULL, &err),
                                 0);
        names = json_array();
        ck_assert_int_eq(follow(b, "listEventSubscribers", ",\"bubbleName\":\"E0\"", 1, NULL, names, NULL, NULL), 3);
        ck_assert_uint_eq(json_array_size(names), 3);
        ck_assert_str_eq(json_string_value(json_array_get(names, 0)), "@localhost/org.test.c2/main");
        ck_assert_str_eq(json_string_value(json_array_get(names, 1)), "@localhost/org.test.c1/main");
        ck_assert_str_eq(json_string_value(json_array_get(names, 2)), "@localhost/org.test.a/main");
        json_decref(names);
        hyb_bus_unref(c2);
        hyb_bus_unref(c1);

        /* Without "limit" and "cursor" a list that fits one page is the plain array, as before. */
        hyb_bus_reply *rep = NULL;
        size_t len;
        ck_assert_int_eq(hyb_bus_call_builtin(a, "listEvents", "{\"endpointName\":\"@localhost/org.test.many/main\"}",
                                              &rep, &err), 0);
        const char *body = hyb_bus_reply_get_body(rep, &len);
        json_t *j = json_loadb(body, len, 0, NULL);
        hyb_bus_reply_unref(rep);
        ck_assert(json_is_array(j));
        ck_assert_uint_eq(json_array_size(j), 7);
        json_decref(j);
        hyb_bus_unref(a);
        hyb_bus_unref(b);
        tb_stop(&t);
}
END_TEST

/* More than one page of bytes: an unpaged list is refused (413), pages stay bounded. */
START_TEST(test_list_pages_bytes)
{
        tbroker t;
        hyb_error err;
        char name[32];
        tb_start(&t, NULL, false);
        hyb_bus *b = tb_connect(&t, "org.test.big", "main");
        hyb_bus *a = tb_connect(&t, "org.test.a", "main");

        /* 100 procedures of 4 000-byte policies: about 400 KB of list. */
        for (int i = 0; i < 100; i++) {
                snprintf(name, sizeof name, "p%03d", i);
                char *p = register_params(name, 4000);
                ck_assert_int_eq(hyb_bus_call_builtin(b, "registerProcedure", p, NULL, &err), 0);
                free(p);
        }
        ck_assert_int_eq(hyb_bus_call_builtin(a, "listProcedures", "{}", NULL, &err), HYB_E_TOO_LARGE);
        ck_assert_ptr_nonnull(strstr(err.message, "cursor"));
        json_t *names = json_array();
        int pages = follow(a, "listProcedures", "", 1000, "procedureName", names, NULL, NULL);
        ck_assert_int_ge(pages, 2);
        ck_assert_uint_eq(json_array_size(names), 100);
        for (int i = 0; i < 100; i++) {
                char full[96];
                snprintf(full, sizeof full, "@localhost/org.test.big/main/p%03d", i);
                ck_assert_uint_eq(count_of(names, full), 1);
        }
        json_decref(names);
        /* A small list still comes whole without paging. */
        ck_assert_int_eq(hyb_bus_call_builtin(a, "listEndpoints", "{}", NULL, &err), 0);
        hyb_bus_unref(a);
        hyb_bus_unref(b);
        tb_stop(&t);
}
END_TEST

/* ---------------------------------------------------------------- NUL in names reaching a client */

/* A fake broker (one raw peer on a listening socket) that sends a client names with NUL bytes. */
typedef struct fake {
        int lfd;
        char dir[64], path[96];
        pthread_t thread;
        int status[3]; /* RESULT statuses the client answered to the three CALLs */
} fake;

static void fake_send(int fd, wire_hdr h, const char *from, size_t fl, const char *member, size_t ml,
                      const char *body)
{
        uint8_t buf[WIRE_HDR_SIZE + WIRE_NAMES_MAX];
        struct iovec iov[2];
        size_t bl = body ? strlen(body) : 0;
        int n = wire_build(&h, from, fl, "@localhost/org.test.c/main", 26, member, ml, body, bl, buf, iov);
        size_t total = iov[0].iov_len + (n > 1 ? iov[1].iov_len : 0);

        ck_assert_int_eq(writev(fd, iov, n), (ssize_t)total);
}

/* Reads one frame; returns its header (names and body dropped). */
static wire_hdr fake_read(int fd)
{
        uint8_t hb[WIRE_HDR_SIZE];
        wire_hdr h;

        ck_assert_int_eq(raw_read_exact(fd, hb, sizeof hb, 3000), 0);
        ck_assert_int_eq(wire_hdr_decode(hb, &h), 0);
        size_t n = wire_names_len(&h) + h.body_len;
        char *rest = malloc(n + 1);
        ck_assert_int_eq(raw_read_exact(fd, rest, n, 3000), 0);
        free(rest);
        return h;
}

/* The fake broker's side of a client's connection: accepted, challenged, authenticated as
 * @localhost/org.test.c/main.  The socket. */
static int fake_accept(fake *f)
{
        int fd = accept(f->lfd, NULL, NULL);

        ck_assert_int_ge(fd, 0);
        fake_send(fd, (wire_hdr){ .type = WIRE_CHALLENGE }, NULL, 0, NULL, 0,
                  "{\"protocol\":\"HYBRID\",\"version\":1,\"nonce\":\"00\",\"maxBody\":65536,"
                  "\"host\":\"localhost\"}");
        ck_assert_int_eq(fake_read(fd).type, WIRE_AUTH);
        fake_send(fd, (wire_hdr){ .type = WIRE_AUTH_RESULT, .status = 200 }, NULL, 0, NULL, 0,
                  "{\"endpoint\":\"@localhost/org.test.c/main\",\"maxBody\":65536}");
        return fd;
}

/* A fake broker listening on a socket in a fresh directory, run by fn on its own thread. */
static void fake_start(fake *f, void *(*fn)(void *))
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };

        snprintf(f->dir, sizeof f->dir, "/tmp/hyb-fake.XXXXXX");
        ck_assert_ptr_nonnull(mkdtemp(f->dir));
        snprintf(f->path, sizeof f->path, "%s/bus.sock", f->dir);
        snprintf(sa.sun_path, sizeof sa.sun_path, "%s", f->path);
        f->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ck_assert_int_eq(bind(f->lfd, (struct sockaddr *)&sa, sizeof sa), 0);
        ck_assert_int_eq(listen(f->lfd, 1), 0);
        ck_assert_int_eq(pthread_create(&f->thread, NULL, fn, f), 0);
}

/* Its socket and directory removed (the thread joined by the test). */
static void fake_stop(fake *f)
{
        close(f->lfd);
        unlink(f->path);
        rmdir(f->dir);
}

static void *fake_main(void *ud)
{
        fake *f = ud;
        int fd = fake_accept(f);
        static const char from[] = "@localhost/org.test.x/main";
        wire_hdr h;

        /* registerProcedure and subscribeEvent: both answered 200. */
        for (int i = 0; i < 2; i++) {
                h = fake_read(fd);
                ck_assert_int_eq(h.type, WIRE_CALL);
                fake_send(fd, (wire_hdr){ .type = WIRE_RESULT, .status = 200, .call_id = h.call_id },
                          HYB_BUS_BUILTIN_ENDPOINT, strlen(HYB_BUS_BUILTIN_ENDPOINT), NULL, 0, "{}");
        }
        /* Events first: the one whose bubble hides a NUL must not reach the callback. */
        fake_send(fd, (wire_hdr){ .type = WIRE_EVENT }, from, sizeof from - 1, "B\0x", 3, "{\"n\":1}");
        fake_send(fd, (wire_hdr){ .type = WIRE_EVENT }, "@localhost/org.test.x/ma\0in", 27, "B", 1, "{\"n\":2}");
        fake_send(fd, (wire_hdr){ .type = WIRE_EVENT }, from, sizeof from - 1, "B", 1, "{\"n\":3}");
        fake_send(fd, (wire_hdr){ .type = WIRE_CALL, .call_id = 101, .timeout_ms = 2000 }, from, sizeof from - 1,
                  "m\0x", 3, "{}");
        fake_send(fd, (wire_hdr){ .type = WIRE_CALL, .call_id = 102, .timeout_ms = 2000 },
                  "@localhost/org.test.x/ma\0in", 27, "m", 1, "{}");
        fake_send(fd, (wire_hdr){ .type = WIRE_CALL, .call_id = 103, .timeout_ms = 2000 }, from, sizeof from - 1,
                  "m", 1, "{}");
        for (int i = 0; i < 3; i++) {
                h = fake_read(fd);
                ck_assert_int_eq(h.type, WIRE_RESULT);
                ck_assert(h.call_id >= 101 && h.call_id <= 103);
                f->status[h.call_id - 101] = h.status;
        }
        close(fd);
        return NULL;
}

typedef struct seen {
        atomic_int events, calls;
        char bodies[64];
} seen;

static void on_ev(hyb_bus *bus, const hyb_bus_event *ev, void *ud)
{
        seen *s = ud;
        size_t len;
        const char *b = (const char *)hyb_bus_event_get_body(ev, &len);

        strncat(s->bodies, b, sizeof s->bodies - strlen(s->bodies) - 1);
        atomic_fetch_add(&s->events, 1);
}

static int on_m(hyb_bus_request *req, void *ud)
{
        seen *s = ud;

        atomic_fetch_add(&s->calls, 1);
        return hyb_bus_request_reply(req, 200, "{}", 2, HYB_BODY_JSON);
}

START_TEST(test_client_nul_names)
{
        fake f = { 0 };
        seen s = { 0 };
        hyb_error err;
        hyb_bus *bus = NULL;

        fake_start(&f, fake_main);

        ck_assert_int_eq(hyb_bus_connect(f.path, "org.test.c", "main", &bus, &err), 0);
        ck_assert_int_eq(hyb_bus_register_procedure(bus, "m", NULL, NULL, on_m, &s, NULL, &err), 0);
        ck_assert_int_eq(hyb_bus_subscribe(bus, "*", "*", on_ev, &s, NULL, &err), 0);
        pump_until(bus, &s.calls, 1, 3000);
        pthread_join(f.thread, NULL);
        while (hyb_bus_process(bus) > 0)
                ;
        /* Only the well-named event and call reached the program. */
        ck_assert_int_eq(atomic_load(&s.events), 1);
        ck_assert_str_eq(s.bodies, "{\"n\":3}");
        ck_assert_int_eq(atomic_load(&s.calls), 1);
        ck_assert_int_eq(f.status[0], 406);
        ck_assert_int_eq(f.status[1], 406);
        ck_assert_int_eq(f.status[2], 200);
        hyb_bus_unref(bus);
        fake_stop(&f);
}
END_TEST

/* ---------------------------------------------------------------- store answers a client takes */

/* A fake daemon answering a client's store calls (lib/bus/bus-store.c): a 200 with a value,
 * a 200 whose body is no value, a 403, then a write's 200 and a write's 507. */
static void *store_fake_main(void *ud)
{
        fake *f = ud;
        int fd = fake_accept(f);
        static const struct {
                int status;
                const char *msg, *body;
        } answers[] = {
                { 200, NULL, "20.125" },
                { 200, NULL, "[1," },
                { 403, "store read of /t/c denied", NULL },
                { 200, NULL, NULL },
                { 507, "quota store.limits.max_bytes exceeded", NULL },
        };

        for (size_t i = 0; i < sizeof answers / sizeof answers[0]; i++) {
                wire_hdr h = fake_read(fd);
                const char *m = answers[i].msg;

                ck_assert_int_eq(h.type, WIRE_CALL);
                fake_send(fd, (wire_hdr){ .type = WIRE_RESULT, .status = (uint16_t)answers[i].status,
                                          .call_id = h.call_id, .flags = WIRE_F_BINARY },
                          HYB_BUS_BUILTIN_ENDPOINT, strlen(HYB_BUS_BUILTIN_ENDPOINT), m,
                          m ? strlen(m) : 0, answers[i].body);
        }
        close(fd);
        return NULL;
}

/* A store call's 200 is taken where it was read (no reply made of it), any other answer as a
 * reply: the value, a value that does not parse (HYB_E_PROTOCOL, with the parser's message),
 * the status's code and message for a refusal, a write's 200 and its refusal. */
START_TEST(test_client_store_answers)
{
        fake f = { 0 };
        hyb_error err;
        hyb_bus *bus = NULL;
        hyb_obj *v = NULL;

        fake_start(&f, store_fake_main);

        ck_assert_int_eq(hyb_bus_connect(f.path, "org.test.c", "main", &bus, &err), 0);
        ck_assert_int_eq(hyb_bus_store_read(bus, "/t/a", &v, &err), 0);
        ck_assert_int_eq(hyb_obj_get_kind(v), HYB_OBJ_REAL);
        ck_assert(hyb_obj_get_real(v) == 20.125);
        hyb_obj_unref(v);
        v = NULL;
        hyb_error_clear(&err);
        ck_assert_int_eq(hyb_bus_store_read(bus, "/t/b", &v, &err), HYB_E_PROTOCOL);
        ck_assert_ptr_null(v);
        ck_assert(err.message[0] != 0);
        hyb_error_clear(&err);
        ck_assert_int_eq(hyb_bus_store_read(bus, "/t/c", &v, &err), hyb_err_from_status(403));
        ck_assert_ptr_null(v);
        ck_assert_str_eq(err.message, "store read of /t/c denied");
        ck_assert_int_eq(hyb_bus_store_write(bus, "/t/d", hyb_obj_noobj(), 0, &err), 0);
        hyb_error_clear(&err);
        ck_assert_int_eq(hyb_bus_store_write(bus, "/t/e", hyb_obj_noobj(), 0, &err),
                         hyb_err_from_status(507));
        ck_assert_str_eq(err.message, "quota store.limits.max_bytes exceeded");
        pthread_join(f.thread, NULL);
        hyb_bus_unref(bus);
        fake_stop(&f);
}
END_TEST

/* A fake broker delivering CALLs with caller info: well formed, then malformed. */
static void *info_main(void *ud)
{
        fake *f = ud;
        int fd = fake_accept(f);
        static const char good[] = "@localhost/org.test.x/main" "http\0alice";
        static const char nonul[] = "@localhost/org.test.x/main" "httpalice";
        static const char twonul[] = "@localhost/org.test.x/main" "http\0al\0ice";
        wire_hdr h;

        h = fake_read(fd); /* registerProcedure */
        ck_assert_int_eq(h.type, WIRE_CALL);
        fake_send(fd, (wire_hdr){ .type = WIRE_RESULT, .status = 200, .call_id = h.call_id },
                  HYB_BUS_BUILTIN_ENDPOINT, strlen(HYB_BUS_BUILTIN_ENDPOINT), NULL, 0, "{}");
        /* the malformed ones first: the client has answered them when the good one ran */
        fake_send(fd, (wire_hdr){ .type = WIRE_CALL, .call_id = 101, .timeout_ms = 2000, .info_len = 9 },
                  nonul, sizeof nonul - 1, "m", 1, "{}");
        fake_send(fd, (wire_hdr){ .type = WIRE_CALL, .call_id = 102, .timeout_ms = 2000, .info_len = 12 },
                  twonul, sizeof twonul - 1, "m", 1, "{}");
        fake_send(fd, (wire_hdr){ .type = WIRE_CALL, .call_id = 103, .timeout_ms = 2000, .info_len = 10 },
                  good, sizeof good - 1, "m", 1, "{}");
        for (int i = 0; i < 3; i++) {
                h = fake_read(fd);
                ck_assert_int_eq(h.type, WIRE_RESULT);
                ck_assert(h.call_id >= 101 && h.call_id <= 103);
                f->status[h.call_id - 101] = h.status;
        }
        close(fd);
        return NULL;
}

typedef struct who {
        atomic_int calls;
        char caller[64], transport[16], principal[16];
} who;

static int on_who(hyb_bus_request *req, void *ud)
{
        who *w = ud;
        const char *t = NULL, *p = NULL;

        ck_assert_int_eq(hyb_bus_request_get_caller_principal(req, &t, &p), 0);
        snprintf(w->caller, sizeof w->caller, "%s", hyb_bus_request_get_caller(req));
        snprintf(w->transport, sizeof w->transport, "%s", t);
        snprintf(w->principal, sizeof w->principal, "%s", p ? p : "(null)");
        atomic_fetch_add(&w->calls, 1);
        return hyb_bus_request_reply(req, 200, "{}", 2, HYB_BODY_JSON);
}

START_TEST(test_caller_info)
{
        fake f = { 0 };
        who w = { 0 };
        hyb_error err;
        hyb_bus *bus = NULL;
        uint8_t hb[WIRE_HDR_SIZE];
        wire_hdr h = { .type = WIRE_RESULT, .from_len = 4, .info_len = 2 };

        /* the decoder: caller info only on a CALL, and within `from` */
        wire_hdr_encode(&h, hb);
        ck_assert_int_eq(wire_hdr_decode(hb, &h), HYB_E_PROTOCOL);
        h = (wire_hdr){ .type = WIRE_CALL, .from_len = 4, .info_len = 5 };
        wire_hdr_encode(&h, hb);
        ck_assert_int_eq(wire_hdr_decode(hb, &h), HYB_E_PROTOCOL);
        h = (wire_hdr){ .type = WIRE_CALL, .from_len = 5, .info_len = 5 };
        wire_hdr_encode(&h, hb);
        ck_assert_int_eq(wire_hdr_decode(hb, &h), 0);
        ck_assert_int_eq(h.info_len, 5);

        fake_start(&f, info_main);

        ck_assert_int_eq(hyb_bus_connect(f.path, "org.test.c", "main", &bus, &err), 0);
        ck_assert_int_eq(hyb_bus_register_procedure(bus, "m", NULL, NULL, on_who, &w, NULL, &err), 0);
        pump_until(bus, &w.calls, 1, 3000);
        pthread_join(f.thread, NULL);
        while (hyb_bus_process(bus) > 0)
                ;
        /* the well-formed info reached the handler, apart from the caller's name */
        ck_assert_int_eq(atomic_load(&w.calls), 1);
        ck_assert_str_eq(w.caller, "@localhost/org.test.x/main");
        ck_assert_str_eq(w.transport, "http");
        ck_assert_str_eq(w.principal, "alice");
        ck_assert_int_eq(f.status[2], 200);
        /* an info without its separator, or with a NUL in the principal: 406 */
        ck_assert_int_eq(f.status[0], 406);
        ck_assert_int_eq(f.status[1], 406);
        hyb_bus_unref(bus);
        fake_stop(&f);
}
END_TEST

void bus_tcase_builtin(Suite *s)
{
        TCase *tc = tcase_create("builtin");
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_builtin_nul_names);
        tcase_add_test(tc, test_builtin_policies);
        tcase_add_test(tc, test_max_policy_bytes);
        tcase_add_test(tc, test_list_pages);
        tcase_add_test(tc, test_list_pages_bytes);
        tcase_add_test(tc, test_client_nul_names);
        tcase_add_test(tc, test_client_store_answers);
        tcase_add_test(tc, test_caller_info);
        suite_add_tcase(s, tc);
}
