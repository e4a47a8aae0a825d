/* SPDX-License-Identifier: MIT */
/*
 * bus_suite: hyb_broker_reload (include/hybrid/broker.h, doc/hybridd.md "Reload"): a new
 * configuration takes effect while connections stay open, nothing already held is taken
 * away, a refused configuration changes nothing, restart-only settings are kept.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "test_bus.h"
#include "testutil.h"

static void on_msg(const hyb_furi *target, const hyb_obj *payload, bool retain, void *ud)
{
}

static void start(tbroker *t, const char *yaml)
{
        hyb_store *st = NULL;

        ck_assert_int_eq(hyb_store_open(NULL, NULL, &st, NULL), 0);
        tb_start_store(t, NULL, false, yaml, st);
        hyb_store_unref(st);
}

static int put(hyb_bus *bus, const char *furi, const char *text, hyb_error *e)
{
        hyb_obj *o = NULL;
        int r;

        ck_assert_int_eq(hyb_obj_parse(text, strlen(text), &o, NULL), 0);
        r = hyb_bus_store_write(bus, furi, o, 0, e);
        hyb_obj_unref(o);
        return r;
}

static int get_int(hyb_bus *bus, const char *furi, hyb_error *e)
{
        hyb_obj *o = NULL;
        int r = hyb_bus_store_read(bus, furi, &o, e);

        if (r >= 0)
                r = (int)hyb_obj_get_int(o);
        hyb_obj_unref(o);
        return r;
}

static hyb_broker_config *config_of(const char *yaml)
{
        hyb_broker_config *cfg = NULL;
        hyb_error e;

        ck_assert_int_eq(hyb_broker_config_new(&cfg), 0);
        ck_assert_msg(hyb_broker_config_load_string(cfg, yaml, strlen(yaml), &e) == 0, "config: %s",
                      e.message);
        return cfg;
}

static const char all_rights[] =
        "policy:\n"
        "  store:\n"
        "    - {furi: \"/#\", allow: [read, write, delete, subscribe]}\n";

/* The new policy.store and a lowered limit reach a connection opened before the reload; the
 * subscriptions it already holds over the new bound stay, the next one is refused. */
START_TEST(test_reload_in_place)
{
        tbroker t;
        hyb_error e;
        hyb_broker_config *cfg;

        start(&t, all_rights);
        hyb_bus *c = tb_connect(&t, "org.test.c", "main");
        ck_assert_int_eq(put(c, "/a/x", "1", &e), 0);
        ck_assert_int_eq(hyb_bus_store_subscribe(c, "/a/#", 0, on_msg, NULL, NULL, &e), 0);
        ck_assert_int_eq(hyb_bus_store_subscribe(c, "/c/#", 0, on_msg, NULL, NULL, &e), 0);

        tb_pause(&t);
        cfg = config_of("limits:\n"
                        "  max_store_subscriptions: 1\n"
                        "policy:\n"
                        "  store:\n"
                        "    - {furi: \"/a/#\", allow: [read, subscribe]}\n"
                        "    - {furi: \"/c/#\", allow: [read, subscribe]}\n");
        ck_assert_int_eq(hyb_broker_reload(t.broker, cfg, &e), 0);
        /* the broker keeps a copy of its own: the caller's may go at once */
        hyb_broker_config_unref(cfg);
        ck_assert_uint_eq(hyb_broker_get_n_connections(t.broker), 1);
        tb_resume(&t);

        ck_assert_int_eq(put(c, "/a/x", "2", &e), HYB_E_FORBIDDEN);
        ck_assert_int_eq(get_int(c, "/a/x", &e), 1);
        ck_assert_int_eq(hyb_bus_store_subscribe(c, "/c/y", 0, on_msg, NULL, NULL, &e),
                         HYB_E_TOO_MANY);
        hyb_bus *d = tb_connect(&t, "org.test.d", "main");
        ck_assert_int_eq(hyb_bus_store_subscribe(d, "/c/#", 0, on_msg, NULL, NULL, &e), 0);
        ck_assert_int_eq(hyb_bus_store_subscribe(d, "/a/#", 0, on_msg, NULL, NULL, &e),
                         HYB_E_TOO_MANY);
        hyb_bus_unref(d);
        hyb_bus_unref(c);
        tb_stop(&t);
}
END_TEST

/* A configuration the broker refuses changes nothing: its permissive policy is not applied. */
START_TEST(test_reload_refused)
{
        tbroker t;
        hyb_error e;
        hyb_broker_config *cfg;

        start(&t, "policy:\n  store:\n    - {furi: \"/#\", allow: [read]}\n");
        hyb_bus *c = tb_connect(&t, "org.test.c", "main");
        ck_assert_int_eq(put(c, "/a/x", "1", &e), HYB_E_FORBIDDEN);

        tb_pause(&t);
        cfg = config_of(all_rights);
        ck_assert_int_eq(hyb_broker_config_set_limit(cfg, "max_body", 100000), 0);
        ck_assert_int_eq(hyb_broker_config_set_limit(cfg, "max_frame", 1000), 0);
        hyb_error_clear(&e);
        ck_assert_int_eq(hyb_broker_reload(t.broker, cfg, &e), HYB_E_CONFIG);
        ck_assert_msg(strstr(e.message, "max_frame"), "message: %s", e.message);
        ck_assert_int_eq(hyb_broker_reload(NULL, cfg, &e), -EINVAL);
        ck_assert_int_eq(hyb_broker_reload(t.broker, NULL, &e), -EINVAL);
        hyb_broker_config_unref(cfg);
        tb_resume(&t);

        ck_assert_int_eq(put(c, "/a/x", "1", &e), HYB_E_FORBIDDEN);
        hyb_obj *o = NULL;
        ck_assert_int_eq(hyb_bus_store_read(c, "/a/x", &o, &e), 0);
        hyb_obj_unref(o);
        hyb_bus_unref(c);
        tb_stop(&t);
}
END_TEST

/* The body of the CHALLENGE a new connection gets (doc/protocol.md), into buf. */
static void read_challenge(tbroker *t, char *buf, size_t size)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        uint8_t h[32];
        size_t names, body;

        strcpy(sa.sun_path, t->sock);
        ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
        ck_assert_int_eq(raw_read_exact(fd, h, sizeof h, 2000), 0);
        body = (size_t)h[0] | (size_t)h[1] << 8 | (size_t)h[2] << 16 | (size_t)h[3] << 24;
        names = (size_t)(h[20] | h[21] << 8) + (size_t)(h[22] | h[23] << 8) +
                (size_t)(h[24] | h[25] << 8);
        ck_assert_uint_lt(names + body, size);
        ck_assert_int_eq(raw_read_exact(fd, buf, names + body, 2000), 0);
        memmove(buf, buf + names, body);
        buf[body] = 0;
        close(fd);
}

/* host is read again at each connection's challenge, but it is a restart-only setting: a
 * reload that changes it keeps the running one. */
START_TEST(test_reload_keeps_host)
{
        tbroker t;
        hyb_error e;
        hyb_broker_config *cfg;
        char ch[1024];

        start(&t, "host: first\n");
        read_challenge(&t, ch, sizeof ch);
        ck_assert_msg(strstr(ch, "\"host\":\"first\""), "challenge: %s", ch);
        tb_pause(&t);
        cfg = config_of("host: elsewhere\nlimits:\n  max_body: 12345\n");
        ck_assert_int_eq(hyb_broker_reload(t.broker, cfg, &e), 0);
        hyb_broker_config_unref(cfg);
        tb_resume(&t);
        read_challenge(&t, ch, sizeof ch);
        /* the limit of the same file applies, the host does not */
        ck_assert_msg(strstr(ch, "\"maxBody\":12345"), "challenge: %s", ch);
        ck_assert_msg(strstr(ch, "\"host\":\"first\""), "challenge: %s", ch);
        tb_stop(&t);
}
END_TEST

void bus_tcase_reload(Suite *s)
{
        TCase *tc = tcase_create("reload");
        tcase_set_timeout(tc, 30);
        tcase_add_test(tc, test_reload_in_place);
        tcase_add_test(tc, test_reload_refused);
        tcase_add_test(tc, test_reload_keeps_host);
        suite_add_tcase(s, tc);
}
