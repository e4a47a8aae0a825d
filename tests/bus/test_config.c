/* SPDX-License-Identifier: MIT */
/*
 * buspieces suite, part 3: the broker's YAML config (doc/protocol.md "The daemon's
 * config", doc/config.md).  Positions are 1-based line:column of the offending
 * node, counted by hand from the YAML text of each case.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "broker/config.h"
#include "hybrid/broker.h"
#include "buspieces.h"
#include "testutil.h"

#define KIB ((size_t)1024)
#define MIB (KIB * 1024)
#define GIB (MIB * 1024)

static int load_str(broker_config *c, const char *yaml)
{
        return broker_config_load_string(c, yaml, strlen(yaml), NULL);
}

static int load_err(broker_config *c, const char *yaml, hyb_error *e)
{
        hyb_error_clear(e);
        return broker_config_load_string(c, yaml, strlen(yaml), e);
}

static void load_ok(broker_config *c, const char *yaml)
{
        hyb_error e;
        int r;

        hyb_error_clear(&e);
        r = broker_config_load_string(c, yaml, strlen(yaml), &e);
        ck_assert_msg(r == 0, "refused:\n%s\n-> %s", yaml, e.message);
}

/* One bad document: the key path it must name and where. */
typedef struct bad_case {
        const char *yaml;
        const char *path;
        int line, column;
} bad_case;

static const bad_case bad_cases[] = {
        /* top level */
        { "hots: localhost\n", "hots", 1, 1 },
        { "host: a\nhost: b\n", "host", 2, 1 },
        { "- a\n- b\n", "config", 1, 1 },
        { "host: a\n---\nhost: b\n", "config", 3, 1 },
        /* host */
        { "host: -bad\n", "host", 1, 7 },
        { "host: my_host\n", "host", 1, 7 },
        { "host: ''\n", "host", 1, 7 },
        { "host: [a, b]\n", "host", 1, 7 },
        /* listen */
        { "listen: /tmp/x.sock\n", "listen", 1, 9 },
        { "listen:\n  unix: [a]\n", "listen.unix", 2, 9 },
        { "listen:\n  tcp: 8080\n", "listen.tcp", 2, 3 },
        /* limits */
        { "limits: 5\n", "limits", 1, 9 },
        { "limits:\n  max_body: -1\n", "limits.max_body", 2, 13 },
        { "limits:\n  max_body: 0\n", "limits.max_body", 2, 13 },
        { "limits:\n  max_body: abc\n", "limits.max_body", 2, 13 },
        { "limits:\n  max_body: 1.5M\n", "limits.max_body", 2, 13 },
        { "limits:\n  max_body: 16 M\n", "limits.max_body", 2, 13 },
        { "limits:\n  max_body: 16MB\n", "limits.max_body", 2, 13 },
        { "limits:\n  max_body: 0x10\n", "limits.max_body", 2, 13 },
        { "limits:\n  max_body: 5G\n", "limits.max_body", 2, 13 },
        { "limits:\n  max_body: 99999999999999999999999\n", "limits.max_body", 2, 13 },
        { "limits:\n  max_body: [1]\n", "limits.max_body", 2, 13 },
        { "limits:\n  max_body: 100M\n", "limits.max_body", 2, 13 }, /* > send_queue_bytes */
        { "limits:\n  max_frame: 1M\n", "limits.max_frame", 2, 14 },  /* < max_body */
        { "limits:\n  max_body: 1M\n  max_frame: 1M\n", "limits.max_frame", 3, 14 },
        { "limits:\n  max_frame: 0\n", "limits.max_frame", 2, 14 },
        { "limits:\n  max_frame: 5G\n", "limits.max_frame", 2, 14 },
        { "limits:\n  max_pending_calls: 0\n", "limits.max_pending_calls", 2, 22 },
        { "limits:\n  max_pending_calls: 10K\n", "limits.max_pending_calls", 2, 22 },
        { "limits:\n  max_pending_calls: 4294967296\n", "limits.max_pending_calls", 2, 22 },
        { "limits:\n  send_queue_bytes: 1K\n", "limits.send_queue_bytes", 2, 21 },
        { "limits:\n  send_queue_bytes: -64M\n", "limits.send_queue_bytes", 2, 21 },
        { "limits:\n  max_connections: 0\n", "limits.max_connections", 2, 20 },
        { "limits:\n  max_connections: many\n", "limits.max_connections", 2, 20 },
        { "limits:\n  max_endpoints: -3\n", "limits.max_endpoints", 2, 18 },
        { "limits:\n  max_endpoints: {a: 1}\n", "limits.max_endpoints", 2, 18 },
        { "limits:\n  max_subscriptions: 0\n", "limits.max_subscriptions", 2, 22 },
        { "limits:\n  auth_timeout_ms: -5\n", "limits.auth_timeout_ms", 2, 20 },
        { "limits:\n  auth_timeout_ms: 10s\n", "limits.auth_timeout_ms", 2, 20 },
        { "limits:\n  ping_after_s: 0\n", "limits.ping_after_s", 2, 17 },
        { "limits:\n  ping_after_s: 100\n", "limits.ping_after_s", 2, 17 }, /* >= drop 90 */
        { "limits:\n  drop_after_s: 60\n", "limits.drop_after_s", 2, 17 },  /* == ping 60 */
        { "limits:\n  ping_after_s: 30\n  drop_after_s: 20\n", "limits.drop_after_s", 3, 17 },
        { "limits:\n  max_bodies: 2M\n", "limits.max_bodies", 2, 3 },
        /* store */
        { "store: /tmp/x.db\n", "store", 1, 8 },
        { "store:\n  durability: fast\n", "store.durability", 2, 15 },
        { "store:\n  paht: /x\n", "store.paht", 2, 3 },
        { "store:\n  limits:\n    max_value_bytes: 0\n", "store.limits.max_value_bytes", 3, 22 },
        { "store:\n  limits:\n    max_depth: 2000\n", "store.limits.max_depth", 3, 16 },
        { "store:\n  limits:\n    max_read_keys: 0\n", "store.limits.max_read_keys", 3, 20 },
        { "store:\n  limits:\n    max_read_keys: 2M\n", "store.limits.max_read_keys", 3, 20 },
        { "store:\n  limits:\n    max_bytes: 0\n", "store.limits.max_bytes", 3, 16 },
        { "store:\n  limits:\n    uid_max_keys: -1\n", "store.limits.uid_max_keys", 3, 19 },
        { "store:\n  limits:\n    uid_max_bytes: lots\n", "store.limits.uid_max_bytes", 3, 20 },
        { "policy:\n  store:\n    - {uid: 1, allow: [read]}\n", "policy.store[0]", 3, 7 },
        { "policy:\n  store:\n    - {furi: /a, allow: [reed]}\n", "policy.store[0].allow[0]", 3, 26 },
        { "policy:\n  store:\n    - {furi: a/b, allow: [read]}\n", "policy.store[0].furi", 3, 14 },
        { "policy:\n  store:\n    - {furi: /a, app: my-app}\n", "policy.store[0].app", 3, 23 },
        { "policy:\n  store:\n    - {furi: /a, app: \"\"}\n", "policy.store[0].app", 3, 23 },
        { "policy:\n  store:\n    - {furi: /a, uid: alice}\n", "policy.store[0].uid", 3, 23 },
        { "policy:\n  store: {furi: /a}\n", "policy.store", 2, 10 },
        /* ranges of the limits table (doc/config.md) */
        { "limits:\n  send_queue_bytes: 18446744073709551615\n", "limits.send_queue_bytes", 2, 21 },
        { "limits:\n  send_queue_bytes: 17G\n", "limits.send_queue_bytes", 2, 21 },
        { "limits:\n  max_pending_calls: 1048577\n", "limits.max_pending_calls", 2, 22 },
        { "limits:\n  max_connections: 4294967295\n", "limits.max_connections", 2, 20 },
        { "limits:\n  max_endpoints: 1048577\n", "limits.max_endpoints", 2, 18 },
        { "limits:\n  max_subscriptions: 1048577\n", "limits.max_subscriptions", 2, 22 },
        { "limits:\n  auth_timeout_ms: 3600001\n", "limits.auth_timeout_ms", 2, 20 },
        { "limits:\n  ping_after_s: 86401\n", "limits.ping_after_s", 2, 17 },
        { "limits:\n  drop_after_s: 86401\n", "limits.drop_after_s", 2, 17 },
        /* no aliases: a config is read as written */
        { "host: &h a\nlog: {level: *h}\n", "config", 2, 14 },
        /* policy */
        { "policy: [1]\n", "policy", 1, 9 },
        { "policy:\n  admins: 1000\n", "policy.admins", 2, 11 },
        { "policy:\n  admins: [alice]\n", "policy.admins[0]", 2, 12 },
        { "policy:\n  admins: [0, -1]\n", "policy.admins[1]", 2, 15 },
        { "policy:\n  admins: [4294967295]\n", "policy.admins[0]", 2, 12 },
        { "policy:\n  apps: [a]\n", "policy.apps", 2, 9 },
        { "policy:\n  apps:\n    bob: [app]\n", "policy.apps.bob", 3, 5 },
        { "policy:\n  apps:\n    \"1000\": app\n", "policy.apps.1000", 3, 13 },
        { "policy:\n  apps:\n    1000: [my-app]\n", "policy.apps.1000[0]", 3, 12 },
        { "policy:\n  apps:\n    1000: ['']\n", "policy.apps.1000[0]", 3, 12 },
        { "policy:\n  apps:\n    1000: [a]\n    \"1000\": [b]\n", "policy.apps.1000", 4, 5 },
        { "policy:\n  groups: []\n", "policy.groups", 2, 3 },
        /* log */
        { "log:\n  level: verbose\n", "log.level", 2, 10 },
        { "log:\n  level: [info]\n", "log.level", 2, 10 },
        { "log:\n  syslog: maybe\n", "log.syslog", 2, 11 },
        { "log:\n  syslog: 2\n", "log.syslog", 2, 11 },
        { "log:\n  file: /var/log/x\n", "log.file", 2, 3 },
};

START_TEST(test_config_bad_values)
{
        const bad_case *bc = &bad_cases[_i];
        broker_config c;
        hyb_error e;
        char where[32];
        int r;

        ck_assert_int_eq(broker_config_init(&c), 0);
        hyb_error_clear(&e);
        r = broker_config_load_string(&c, bc->yaml, strlen(bc->yaml), &e);
        ck_assert_msg(r == HYB_E_CONFIG, "accepted (%d):\n%s", r, bc->yaml);
        ck_assert_int_eq(e.code, HYB_E_CONFIG);
        snprintf(where, sizeof(where), " %d:%d", bc->line, bc->column);
        ck_assert_msg(strncmp(e.message, bc->path, strlen(bc->path)) == 0 &&
                              e.message[strlen(bc->path)] == ':',
                      "message '%s' does not start with key path '%s'", e.message, bc->path);
        ck_assert_msg(strstr(e.message, where) != NULL, "message '%s' lacks%s", e.message, where);
        ck_assert_int_eq(e.line, bc->line);
        ck_assert_int_eq(e.column, bc->column);
        /* All-or-nothing: a refused file changes nothing. */
        ck_assert_str_eq(c.host, "localhost");
        ck_assert_uint_eq(c.max_body, 16 * MIB);
        ck_assert_uint_eq(c.ping_after_s, 60);
        ck_assert_uint_eq(c.n_admins, 0);
        broker_config_clear(&c);
}
END_TEST

START_TEST(test_config_defaults)
{
        broker_config c;

        ck_assert_int_eq(broker_config_init(&c), 0);
        ck_assert_str_eq(c.host, "localhost");
        ck_assert_ptr_null(c.listen_unix);
        ck_assert_uint_eq(c.max_body, 16 * MIB);
        ck_assert_uint_eq(c.max_frame, 16 * MIB + 64 * KIB);
        ck_assert_uint_eq(c.max_pending_calls, 1024);
        ck_assert_uint_eq(c.send_queue_bytes, 64 * MIB);
        ck_assert_uint_eq(c.max_connections, 1024);
        ck_assert_uint_eq(c.max_endpoints, 1024);
        ck_assert_uint_eq(c.max_subscriptions, 1024);
        ck_assert_uint_eq(c.auth_timeout_ms, 10000);
        ck_assert_uint_eq(c.ping_after_s, 60);
        ck_assert_uint_eq(c.drop_after_s, 90);
        ck_assert_uint_eq(c.n_admins, 0);
        ck_assert_uint_eq(c.n_apps, 0);
        ck_assert_str_eq(c.log_level, "info");
        ck_assert(!c.log_syslog);
        /* No policy.apps: any local peer may claim any app; root is always admin. */
        ck_assert(broker_config_may_claim(&c, 1000, "org.anything", 12));
        ck_assert(broker_config_is_admin(&c, 0));
        ck_assert(!broker_config_is_admin(&c, 1000));
        /* An empty document (or only comments) keeps every value. */
        load_ok(&c, "");
        load_ok(&c, "# nothing here\n");
        load_ok(&c, "limits:\nlog:\n");
        ck_assert_uint_eq(c.max_body, 16 * MIB);
        ck_assert_str_eq(c.log_level, "info");
        broker_config_clear(&c);
        ck_assert_ptr_null(c.host);
        broker_config_clear(&c); /* twice is harmless */
}
END_TEST

START_TEST(test_config_full_file)
{
        broker_config c;
        hyb_error e;

        ck_assert_int_eq(broker_config_init(&c), 0);
        hyb_error_clear(&e);
        ck_assert_msg(broker_config_load_file(&c, test_data_path("bus/configs/full.yaml"), &e) == 0,
                      "%s", e.message);
        ck_assert_str_eq(c.host, "gateway-1.example.com");
        ck_assert_str_eq(c.listen_unix, "/run/hybrid/test-bus.sock");
        ck_assert_uint_eq(c.max_body, 32 * MIB);
        ck_assert_uint_eq(c.max_frame, 33 * MIB);
        ck_assert_uint_eq(c.max_pending_calls, 256);
        ck_assert_uint_eq(c.send_queue_bytes, 128 * MIB);
        ck_assert_uint_eq(c.max_connections, 500);
        ck_assert_uint_eq(c.max_endpoints, 300);
        ck_assert_uint_eq(c.max_subscriptions, 2000);
        ck_assert_uint_eq(c.auth_timeout_ms, 5000);
        ck_assert_uint_eq(c.ping_after_s, 30);
        ck_assert_uint_eq(c.drop_after_s, 45);
        ck_assert_uint_eq(c.n_admins, 2);
        ck_assert_uint_eq(c.admins[0], 1000);
        ck_assert_uint_eq(c.admins[1], 1001);
        ck_assert_uint_eq(c.n_apps, 2);
        ck_assert_uint_eq(c.apps[0].uid, 1000);
        ck_assert_uint_eq(c.apps[0].n_globs, 2);
        ck_assert_str_eq(c.apps[0].globs[0], "org.example.*");
        ck_assert_str_eq(c.apps[0].globs[1], "com.vendor.tool");
        ck_assert_uint_eq(c.apps[1].uid, 1002);
        ck_assert_uint_eq(c.apps[1].n_globs, 2);
        ck_assert_str_eq(c.apps[1].globs[0], "org.sensors.?emp");
        ck_assert_str_eq(c.apps[1].globs[1], "cn.fmsoft.*");
        ck_assert_str_eq(c.log_level, "debug");
        ck_assert(c.log_syslog);

        /* Claims: globs of the uid's entry, case-insensitive; unlisted uids get nothing. */
        ck_assert(broker_config_may_claim(&c, 1000, "org.example.lights", 18));
        ck_assert(broker_config_may_claim(&c, 1000, "ORG.Example.x", 13));
        ck_assert(broker_config_may_claim(&c, 1000, "com.vendor.tool", 15));
        ck_assert(!broker_config_may_claim(&c, 1000, "com.vendor.tool2", 16));
        ck_assert(!broker_config_may_claim(&c, 1000, "org.examplex", 12));
        ck_assert(!broker_config_may_claim(&c, 1000, "org.sensors.temp", 16));
        ck_assert(broker_config_may_claim(&c, 1002, "org.sensors.temp", 16));
        ck_assert(broker_config_may_claim(&c, 1002, "org.sensors.Temp", 16));
        ck_assert(!broker_config_may_claim(&c, 1002, "org.sensors.tmp", 15));
        ck_assert(!broker_config_may_claim(&c, 1001, "org.example.lights", 18));
        ck_assert(!broker_config_may_claim(&c, 0, "org.example.lights", 18));
        /* Admins: the list, and root always. */
        ck_assert(broker_config_is_admin(&c, 0));
        ck_assert(broker_config_is_admin(&c, 1000));
        ck_assert(broker_config_is_admin(&c, 1001));
        ck_assert(!broker_config_is_admin(&c, 1002));
        broker_config_clear(&c);
}
END_TEST

START_TEST(test_config_file_errors)
{
        broker_config c;
        hyb_error e;
        const char *path;

        ck_assert_int_eq(broker_config_init(&c), 0);
        path = test_data_path("bus/configs/unknown-key.yaml");
        ck_assert_int_eq(broker_config_load_file(&c, path, &e), HYB_E_CONFIG);
        ck_assert_int_eq(e.line, 4);
        ck_assert_int_eq(e.column, 3);
        ck_assert_msg(strstr(e.message, "unknown-key.yaml") &&
                              strstr(e.message, "limits.max_bodies") && strstr(e.message, "4:3"),
                      "%s", e.message);
        /* max_body: 1M on line 3 did not leak through. */
        ck_assert_uint_eq(c.max_body, 16 * MIB);

        path = test_data_path("bus/configs/bad-policy.yaml");
        ck_assert_int_eq(broker_config_load_file(&c, path, &e), HYB_E_CONFIG);
        ck_assert_int_eq(e.line, 4);
        ck_assert_int_eq(e.column, 7);
        ck_assert_msg(strstr(e.message, "policy.admins[1]"), "%s", e.message);

        ck_assert_int_eq(broker_config_load_file(&c, test_data_path("bus/configs/none.yaml"), &e),
                         -ENOENT);
        ck_assert_msg(strstr(e.message, "none.yaml"), "%s", e.message);

        /* A YAML syntax error is a config error with a position too. */
        ck_assert_int_eq(load_err(&c, "limits: {max_body: 1\n", &e),
                         HYB_E_CONFIG);
        ck_assert_int_ge(e.line, 1);
        ck_assert_int_ge(e.column, 1);
        ck_assert_msg(strstr(e.message, "YAML"), "%s", e.message);
        broker_config_clear(&c);
}
END_TEST

START_TEST(test_config_load_over)
{
        broker_config c;

        ck_assert_int_eq(broker_config_init(&c), 0);
        load_ok(&c, "host: Bus.Example\npolicy:\n  admins: [5, 6]\n");
        /* A second load changes only what it names; a list replaces the previous one. */
        load_ok(&c, "log:\n  level: WARNING\npolicy:\n  admins: [7]\n");
        ck_assert_str_eq(c.host, "Bus.Example");
        ck_assert_str_eq(c.log_level, "warning");
        ck_assert_uint_eq(c.n_admins, 1);
        ck_assert_uint_eq(c.admins[0], 7);
        /* A refused load keeps the previous loads. */
        ck_assert_int_eq(load_str(&c, "host: x\nlog: {level: loud}\n"),
                         HYB_E_CONFIG);
        ck_assert_str_eq(c.host, "Bus.Example");
        ck_assert_str_eq(c.log_level, "warning");
        load_ok(&c, "policy:\n  admins: []\n");
        ck_assert_uint_eq(c.n_admins, 0);
        ck_assert(!broker_config_is_admin(&c, 7));
        broker_config_clear(&c);
}
END_TEST

START_TEST(test_config_listen_and_log)
{
        broker_config c;
        char yaml[300], path[200];

        ck_assert_int_eq(broker_config_init(&c), 0);
        load_ok(&c, "listen:\n  unix: /tmp/hyb.sock\n");
        ck_assert_str_eq(c.listen_unix, "/tmp/hyb.sock");
        /* null brings the built-in default back. */
        load_ok(&c, "listen:\n  unix: ~\n");
        ck_assert_ptr_null(c.listen_unix);
        /* sun_path holds 107 bytes and a NUL. */
        memset(path, 'p', sizeof(path));
        path[0] = '/';
        snprintf(yaml, sizeof(yaml), "listen: {unix: %.107s}\n", path);
        load_ok(&c, yaml);
        ck_assert_uint_eq(strlen(c.listen_unix), 107);
        snprintf(yaml, sizeof(yaml), "listen: {unix: %.108s}\n", path);
        ck_assert_int_eq(load_str(&c, yaml), HYB_E_CONFIG);

        load_ok(&c, "log: {level: error, syslog: true}\n");
        ck_assert_str_eq(c.log_level, "error");
        ck_assert(c.log_syslog);
        load_ok(&c, "log: {level: Info, syslog: no}\n");
        ck_assert_str_eq(c.log_level, "info");
        ck_assert(!c.log_syslog);
        load_ok(&c, "log: {syslog: On}\n");
        ck_assert(c.log_syslog);
        load_ok(&c, "log: {syslog: FALSE}\n");
        ck_assert(!c.log_syslog);
        load_ok(&c, "host: 10.0.0.1\n");
        ck_assert_str_eq(c.host, "10.0.0.1");
        broker_config_clear(&c);
}
END_TEST

START_TEST(test_config_sizes)
{
        broker_config c;

        ck_assert_int_eq(broker_config_init(&c), 0);
        /* Only max_body given: the frame limit follows it with 64 KiB for the header. */
        load_ok(&c, "limits:\n  max_body: 1K\n");
        ck_assert_uint_eq(c.max_body, 1024);
        ck_assert_uint_eq(c.max_frame, 1024 + 64 * KIB);
        load_ok(&c, "limits: {max_body: 4k}\n");
        ck_assert_uint_eq(c.max_body, 4096);
        load_ok(&c, "limits: {max_body: 1048576}\n");
        ck_assert_uint_eq(c.max_body, MIB);
        load_ok(&c, "limits: {max_body: \"2MiB\"}\n");
        ck_assert_uint_eq(c.max_body, 2 * MIB);
        load_ok(&c, "limits: {max_body: 16m, max_frame: 17M}\n");
        ck_assert_uint_eq(c.max_body, 16 * MIB);
        ck_assert_uint_eq(c.max_frame, 17 * MIB);
        load_ok(&c, "limits: {max_body: 2G, send_queue_bytes: 3GiB}\n");
        ck_assert_uint_eq(c.max_body, 2 * GIB);
        ck_assert_uint_eq(c.max_frame, 2 * GIB + 64 * KIB);
        ck_assert_uint_eq(c.send_queue_bytes, 3 * GIB);
        /* The largest body still leaves the header room under 4 GiB. */
        load_ok(&c, "limits: {max_body: 4294901759, send_queue_bytes: 8G}\n");
        ck_assert_uint_eq(c.max_frame, 4294967295u);
        ck_assert_int_eq(load_str(&c, "limits: {max_body: 4294901760}\n"),
                         HYB_E_CONFIG);
        broker_config_clear(&c);
}
END_TEST

START_TEST(test_config_counts_and_times)
{
        broker_config c;

        ck_assert_int_eq(broker_config_init(&c), 0);
        load_ok(&c, "limits:\n"
                    "  max_pending_calls: 1\n"
                    "  max_connections: 2\n"
                    "  max_endpoints: 3\n"
                    "  max_subscriptions: 4\n"
                    "  auth_timeout_ms: 250\n"
                    "  ping_after_s: 5\n"
                    "  drop_after_s: 6\n");
        ck_assert_uint_eq(c.max_pending_calls, 1);
        ck_assert_uint_eq(c.max_connections, 2);
        ck_assert_uint_eq(c.max_endpoints, 3);
        ck_assert_uint_eq(c.max_subscriptions, 4);
        ck_assert_uint_eq(c.auth_timeout_ms, 250);
        ck_assert_uint_eq(c.ping_after_s, 5);
        ck_assert_uint_eq(c.drop_after_s, 6);
        load_ok(&c, "limits: {max_pending_calls: 1048576, max_subscriptions: \"10\"}\n");
        ck_assert_uint_eq(c.max_pending_calls, 1048576);
        ck_assert_uint_eq(c.max_subscriptions, 10);
        /* Raising ping past the current drop is refused even if drop is not in this file. */
        ck_assert_int_eq(load_str(&c, "limits: {ping_after_s: 6}\n"),
                         HYB_E_CONFIG);
        ck_assert_uint_eq(c.ping_after_s, 5);
        broker_config_clear(&c);
}
END_TEST

/* The quota keys of doc/config.md: defaults, sizes with suffixes, counts, 0 refused. */
START_TEST(test_config_quotas)
{
        broker_config c;

        ck_assert_int_eq(broker_config_init(&c), 0);
        ck_assert_uint_eq(c.max_memory, 64 * MIB);
        ck_assert_uint_eq(c.uid_max_bytes, 48 * MIB);
        ck_assert_uint_eq(c.uid_max_connections, 256);
        ck_assert_uint_eq(c.uid_max_pending_calls, 4096);
        ck_assert_uint_eq(c.uid_max_subscriptions, 8192);
        ck_assert_uint_eq(c.uid_max_registrations, 4096);
        ck_assert_uint_eq(c.uid_max_policy_bytes, 4 * MIB);
        ck_assert_uint_eq(c.max_unauth_connections, 256);
        ck_assert_uint_eq(c.uid_max_unauth_connections, 64);
        load_ok(&c, "limits:\n"
                    "  max_memory: 1G\n"
                    "  uid_max_bytes: 512K\n"
                    "  uid_max_connections: 1\n"
                    "  uid_max_pending_calls: 2\n"
                    "  uid_max_subscriptions: 3\n"
                    "  uid_max_registrations: 4\n"
                    "  uid_max_policy_bytes: 5M\n"
                    "  max_unauth_connections: 6\n"
                    "  uid_max_unauth_connections: 7\n");
        ck_assert_uint_eq(c.max_memory, 1024 * MIB);
        ck_assert_uint_eq(c.uid_max_bytes, 512 * KIB);
        ck_assert_uint_eq(c.uid_max_connections, 1);
        ck_assert_uint_eq(c.uid_max_pending_calls, 2);
        ck_assert_uint_eq(c.uid_max_subscriptions, 3);
        ck_assert_uint_eq(c.uid_max_registrations, 4);
        ck_assert_uint_eq(c.uid_max_policy_bytes, 5 * MIB);
        ck_assert_uint_eq(c.max_unauth_connections, 6);
        ck_assert_uint_eq(c.uid_max_unauth_connections, 7);
        ck_assert_int_eq(load_str(&c, "limits: {max_memory: 0}\n"), HYB_E_CONFIG);
        ck_assert_int_eq(load_str(&c, "limits: {uid_max_connections: 4294967296}\n"), HYB_E_CONFIG);
        ck_assert_uint_eq(c.max_memory, 1024 * MIB);
        ck_assert_uint_eq(c.uid_max_connections, 1);
        broker_config_clear(&c);
}
END_TEST

START_TEST(test_config_policy)
{
        broker_config c;

        ck_assert_int_eq(broker_config_init(&c), 0);
        load_ok(&c, "policy:\n  admins: [0, 4294967294]\n  apps:\n    0: [org.hybridos.*]\n"
                    "    '1000': ['*']\n");
        ck_assert_uint_eq(c.n_admins, 2);
        ck_assert_uint_eq(c.admins[1], 4294967294u);
        ck_assert(broker_config_is_admin(&c, 4294967294u));
        ck_assert(broker_config_may_claim(&c, 1000, "any.thing", 9));
        ck_assert(broker_config_may_claim(&c, 0, "org.hybridos.settings", 21));
        /* Root is bound by a listed policy too (no ubus-style bypass). */
        ck_assert(!broker_config_may_claim(&c, 0, "org.example", 11));
        ck_assert(!broker_config_may_claim(&c, 33, "org.example", 11));
        /* An entry with no globs claims nothing. */
        load_ok(&c, "policy:\n  apps:\n    1000: []\n");
        ck_assert_uint_eq(c.n_apps, 1);
        ck_assert(!broker_config_may_claim(&c, 1000, "any.thing", 9));
        /* An empty mapping is "no policy": anyone may claim anything. */
        load_ok(&c, "policy: {apps: {}}\n");
        ck_assert_uint_eq(c.n_apps, 0);
        ck_assert(broker_config_may_claim(&c, 1000, "any.thing", 9));
        broker_config_clear(&c);
}
END_TEST

/* Out-of-range values name the allowed range; unknown keys the closest known one. */
START_TEST(test_config_messages)
{
        broker_config c;
        hyb_error e;

        ck_assert_int_eq(broker_config_init(&c), 0);
        /* The value of issue 7, accepted before: refused with the range and position. */
        ck_assert_int_eq(load_err(&c, "limits:\n  send_queue_bytes: "
                                                   "18446744073709551615\n", &e),
                         HYB_E_CONFIG);
        ck_assert_msg(strstr(e.message, "allowed 1..16G") && strstr(e.message, " 2:21"), "%s",
                      e.message);
        ck_assert_uint_eq(c.send_queue_bytes, 64 * MIB);
        ck_assert_int_eq(load_err(&c, "limits: {auth_timeout_ms: 0}", &e),
                         HYB_E_CONFIG);
        ck_assert_msg(strstr(e.message, "allowed 1..3600000 ms"), "%s", e.message);
        ck_assert_int_eq(load_err(&c, "limits:\n  max_bodies: 2M\n", &e),
                         HYB_E_CONFIG);
        ck_assert_msg(strstr(e.message, "did you mean max_body?"), "%s", e.message);
        ck_assert_int_eq(load_err(&c, "hots: a\n", &e), HYB_E_CONFIG);
        ck_assert_msg(strstr(e.message, "did you mean host?"), "%s", e.message);
        ck_assert_int_eq(load_err(&c, "policy: {admin: [1]}\n", &e),
                         HYB_E_CONFIG);
        ck_assert_msg(strstr(e.message, "did you mean admins?"), "%s", e.message);
        /* Bad UTF-8: libyaml knows the byte offset only. */
        ck_assert_int_eq(load_err(&c, "host: a\xff\n", &e), HYB_E_CONFIG);
        ck_assert_msg(strstr(e.message, "UTF-8") && strstr(e.message, "at byte 7"), "%s",
                      e.message);
        /* Nothing close: no guess. */
        ck_assert_int_eq(load_err(&c, "limits: {colour: blue}\n", &e),
                         HYB_E_CONFIG);
        ck_assert_msg(strstr(e.message, "unknown key") && !strstr(e.message, "did you mean"),
                      "%s", e.message);
        /* A relation names both limits and their values. */
        ck_assert_int_eq(load_err(&c, "limits: {send_queue_bytes: 1M}", &e),
                         HYB_E_CONFIG);
        ck_assert_msg(strstr(e.message, "limits.send_queue_bytes: must be at least "
                                        "limits.max_frame (16842752)"),
                      "%s", e.message);
        ck_assert_int_eq(load_err(&c, "limits:\n  ping_after_s: 90\n", &e), HYB_E_CONFIG);
        ck_assert_msg(strstr(e.message, "limits.ping_after_s: must be less than "
                                        "limits.drop_after_s (90)"),
                      "%s", e.message);
        ck_assert_int_eq(load_err(&c, "limits:\n  max_body: 64M\n", &e), HYB_E_CONFIG);
        ck_assert_msg(strstr(e.message, "limits.max_body: makes limits.max_frame 67174400, which "
                                        "must be at most limits.send_queue_bytes (67108864)"),
                      "%s", e.message);
        broker_config_clear(&c);
}
END_TEST

static char *repeat(const char *head, const char *unit, size_t n, const char *tail, size_t *ret_len)
{
        size_t hl = strlen(head), ul = strlen(unit), tl = strlen(tail);
        char *s = malloc(hl + ul * n + tl + 1), *p;

        ck_assert_ptr_nonnull(s);
        memcpy(s, head, hl);
        p = s + hl;
        for (size_t i = 0; i < n; i++, p += ul)
                memcpy(p, unit, ul);
        memcpy(p, tail, tl + 1);
        *ret_len = hl + ul * n + tl;
        return s;
}

/* 100 000-deep nesting: refused at the first node that cannot be there (was > 20 s). */
START_TEST(test_config_deep_nesting)
{
        static const struct {
                const char *head, *unit, *path;
                int line, column;
        } cases[] = {
                { "", "[", "config", 1, 1 },
                { "limits: ", "[", "limits", 1, 9 },
                { "policy:\n  admins: ", "[", "policy.admins[0]", 2, 12 },
                { "policy:\n  apps: {1: ", "[", "policy.apps.1[0]", 2, 14 },
                { "log: ", "{a: ", "log.a", 1, 7 },
        };
        broker_config c;
        hyb_error e;

        ck_assert_int_eq(broker_config_init(&c), 0);
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                size_t len;
                char *yaml = repeat(cases[i].head, cases[i].unit, 100000, "", &len);
                char where[32];

                hyb_error_clear(&e);
                ck_assert_int_eq(broker_config_load_string(&c, yaml, len, &e), HYB_E_CONFIG);
                ck_assert_msg(strncmp(e.message, cases[i].path, strlen(cases[i].path)) == 0,
                              "%zu: %s", i, e.message);
                snprintf(where, sizeof(where), " %d:%d", cases[i].line, cases[i].column);
                ck_assert_msg(strstr(e.message, where), "%zu: %s", i, e.message);
                free(yaml);
        }
        broker_config_clear(&c);
}
END_TEST

/* 100 000 uids in both lists load (was quadratic), and a repeat at the end is still found. */
START_TEST(test_config_many_uids)
{
        const size_t n = 100000;
        size_t cap = 40 * n + 200, len;
        char *yaml = malloc(cap);
        broker_config c;
        hyb_error e;

        ck_assert_ptr_nonnull(yaml);
        len = (size_t)snprintf(yaml, cap, "policy:\n  admins: [");
        for (size_t i = 0; i < n; i++)
                len += (size_t)snprintf(yaml + len, cap - len, "%s%zu", i ? ", " : "", i + 1);
        len += (size_t)snprintf(yaml + len, cap - len, "]\n  apps:\n");
        for (size_t i = 0; i < n; i++)
                len += (size_t)snprintf(yaml + len, cap - len, "    %zu: [org.app%zu]\n", i + 1, i);
        ck_assert_int_eq(broker_config_init(&c), 0);
        load_ok(&c, yaml);
        ck_assert_uint_eq(c.n_admins, n);
        ck_assert_uint_eq(c.admins[n - 1], n);
        ck_assert_uint_eq(c.n_apps, n);
        ck_assert(broker_config_is_admin(&c, 77777));
        ck_assert(broker_config_may_claim(&c, 77777, "org.app77776", 12));
        ck_assert(!broker_config_may_claim(&c, 77777, "org.app77777", 12));

        /* Entry n+1 repeats uid 1 as "01": refused at that key, line 3 + n + 1. */
        len += (size_t)snprintf(yaml + len, cap - len, "    \"01\": [x]\n");
        hyb_error_clear(&e);
        ck_assert_int_eq(broker_config_load_string(&c, yaml, len, &e), HYB_E_CONFIG);
        ck_assert_msg(strstr(e.message, "repeated uid 1"), "%s", e.message);
        ck_assert_int_eq(e.line, (int)(3 + n + 1));
        ck_assert_int_eq(e.column, 5);
        free(yaml);
        broker_config_clear(&c);
}
END_TEST

/* Input beyond CONFIG_MAX_BYTES is refused, from a string or a file. */
START_TEST(test_config_size_bound)
{
        static const char pad[] = "# padding padding padding padding padding padding padding\n";
        size_t len, pl = sizeof(pad) - 1;
        char *yaml = repeat("host: a\n", pad, (CONFIG_MAX_BYTES - 8) / pl + 1, "", &len);
        char path[300], *dir = test_tmpdir();
        broker_config c;
        hyb_error e;
        FILE *f;

        ck_assert_uint_gt(len, CONFIG_MAX_BYTES);
        ck_assert_int_eq(broker_config_init(&c), 0);
        ck_assert_int_eq(broker_config_load_string(&c, yaml, len, &e), HYB_E_CONFIG);
        ck_assert_msg(strstr(e.message, "larger than"), "%s", e.message);
        snprintf(path, sizeof(path), "%s/big.yaml", dir);
        f = fopen(path, "w");
        ck_assert_ptr_nonnull(f);
        ck_assert_uint_eq(fwrite(yaml, 1, len, f), len);
        fclose(f);
        ck_assert_int_eq(broker_config_load_file(&c, path, &e), HYB_E_CONFIG);
        ck_assert_msg(strstr(e.message, "big.yaml: config: larger than"), "%s", e.message);
        ck_assert_str_eq(c.host, "localhost");
        /* Just under the bound loads. */
        yaml[len - pl] = '\0';
        ck_assert_uint_le(len - pl, CONFIG_MAX_BYTES);
        load_ok(&c, yaml);
        ck_assert_str_eq(c.host, "a");
        test_rmrf(dir);
        free(dir);
        free(yaml);
        broker_config_clear(&c);
}
END_TEST

/* The public setters and hyb_broker_new check the same table as the loader. */
START_TEST(test_config_public_limits)
{
        struct event_base *base = event_base_new();
        hyb_broker_config *cfg;
        hyb_broker *b = NULL;
        hyb_error e;
        uint64_t v;

        ck_assert_ptr_nonnull(base);
        ck_assert_int_eq(hyb_broker_config_new(&cfg), 0);
        /* Every row: default readable by name, min and max accepted, one past refused. */
        for (size_t i = 0; i < broker_n_limits; i++) {
                ck_assert_int_eq(hyb_broker_config_get_limit(cfg, broker_limits[i].name, &v), 0);
                ck_assert_uint_eq(v, broker_limits[i].dflt);
        }
        for (size_t i = 0; i < broker_n_limits; i++) {
                const broker_limit *l = &broker_limits[i];

                ck_assert_int_eq(hyb_broker_config_set_limit(cfg, l->name, l->min - 1), -EINVAL);
                ck_assert_int_eq(hyb_broker_config_set_limit(cfg, l->name, l->max + 1), -EINVAL);
                ck_assert_int_eq(hyb_broker_config_set_limit(cfg, l->name, l->max), 0);
                ck_assert_int_eq(hyb_broker_config_get_limit(cfg, l->name, &v), 0);
                ck_assert_uint_eq(v, l->max);
                ck_assert_int_eq(hyb_broker_config_set_limit(cfg, l->name, l->dflt), 0);
        }
        ck_assert_int_eq(hyb_broker_config_set_limit(cfg, "send_queue_bytes", UINT64_MAX),
                         -EINVAL);
        ck_assert_int_eq(hyb_broker_config_set_limit(cfg, "max_bodies", 1), -EINVAL);
        ck_assert_int_eq(hyb_broker_config_get_limit(cfg, "max_bodies", &v), -EINVAL);
        /* Each value in range, the relation broken: hyb_broker_new refuses, naming it. */
        ck_assert_int_eq(hyb_broker_config_set_limit(cfg, "send_queue_bytes", 65536), 0);
        hyb_error_clear(&e);
        ck_assert_int_eq(hyb_broker_new(cfg, base, &b, &e), HYB_E_CONFIG);
        ck_assert_ptr_null(b);
        ck_assert_msg(strstr(e.message, "limits.send_queue_bytes (65536) must be at least "
                                        "limits.max_frame"),
                      "%s", e.message);
        ck_assert_int_eq(hyb_broker_config_set_limit(cfg, "ping_after_s", 100), 0);
        ck_assert_int_eq(hyb_broker_config_set_limit(cfg, "send_queue_bytes", 64 * MIB), 0);
        ck_assert_int_eq(hyb_broker_new(cfg, base, &b, &e), HYB_E_CONFIG);
        ck_assert_msg(strstr(e.message, "limits.drop_after_s (90) must be greater than "
                                        "limits.ping_after_s (100)"),
                      "%s", e.message);
        ck_assert_int_eq(hyb_broker_config_set_limit(cfg, "drop_after_s", 101), 0);
        /* max_body drags max_frame along when it would pass it. */
        ck_assert_int_eq(hyb_broker_config_set_limit(cfg, "max_body", 32 * MIB), 0);
        ck_assert_int_eq(hyb_broker_config_get_limit(cfg, "max_frame", &v), 0);
        ck_assert_uint_eq(v, 32 * MIB + 64 * KIB);
        ck_assert_int_eq(hyb_broker_config_set_limit(cfg, "send_queue_bytes", 64 * MIB), 0);
        ck_assert_int_eq(hyb_broker_new(cfg, base, &b, &e), 0);
        hyb_broker_free(b);
        hyb_broker_config_unref(cfg);
        event_base_free(base);
}
END_TEST

/* doc/config.md has one row per limit, with the unit, range and default of the table. */
START_TEST(test_config_doc_table)
{
        char *doc = test_read_file(test_data_path("../doc/config.md"), NULL);

        ck_assert_ptr_nonnull(doc);
        for (size_t i = 0; i < broker_n_limits; i++) {
                const broker_limit *l = &broker_limits[i];
                char want[200], range[80], dflt[40];
                const char *row;

                broker_limit_format_range(l, range, sizeof(range));
                broker_limit_format(l, l->dflt, dflt, sizeof(dflt));
                snprintf(want, sizeof(want), "| `%s` | %s | %s | `%s` |", l->name,
                         broker_limit_unit_name(l->unit), range, dflt);
                row = strstr(doc, want);
                ck_assert_msg(row, "doc/config.md lacks the row starting '%s'", want);
                ck_assert_msg(strstr(row, l->doc) && strstr(row, l->doc) < strchr(row, '\n'),
                              "doc/config.md row of %s lacks '%s'", l->name, l->doc);
        }
        free(doc);
}
END_TEST

TCase *bp_config_tcase(void)
{
        TCase *tc = tcase_create("config");

        tcase_add_test(tc, test_config_defaults);
        tcase_add_test(tc, test_config_full_file);
        tcase_add_test(tc, test_config_file_errors);
        tcase_add_test(tc, test_config_load_over);
        tcase_add_test(tc, test_config_listen_and_log);
        tcase_add_loop_test(tc, test_config_bad_values, 0,
                            (int)(sizeof(bad_cases) / sizeof(bad_cases[0])));
        return tc;
}

TCase *bp_config_limits_tcase(void)
{
        TCase *tc = tcase_create("config_limits");

        tcase_add_test(tc, test_config_sizes);
        tcase_add_test(tc, test_config_counts_and_times);
        tcase_add_test(tc, test_config_quotas);
        tcase_add_test(tc, test_config_messages);
        tcase_add_test(tc, test_config_deep_nesting);
        tcase_add_test(tc, test_config_many_uids);
        tcase_add_test(tc, test_config_size_bound);
        tcase_add_test(tc, test_config_public_limits);
        tcase_add_test(tc, test_config_doc_table);
        return tc;
}

/* store: and policy.store land in the config as written; absent, the defaults hold. */
START_TEST(test_config_store)
{
        broker_config c;

        ck_assert_int_eq(broker_config_init(&c), 0);
        ck_assert_ptr_null(c.store_path);
        ck_assert_int_eq(c.store_durability, -1);
        ck_assert(!c.store_policy);
        load_ok(&c, "store:\n  path: /tmp/s.db\n  durability: FULL\n"
                    "  limits: {max_value_bytes: 2M, max_depth: 8, max_read_keys: 500,\n"
                    "           max_bytes: 1G, uid_max_keys: 1000, uid_max_bytes: 64M}\n"
                    "policy:\n  store:\n    - {uid: 7, app: org.x.*, furi: /a/+/t, allow: [read, subscribe]}\n"
                    "    - {furi: /b/#, allow: [write, delete]}\n");
        ck_assert_str_eq(c.store_path, "/tmp/s.db");
        ck_assert_int_eq(c.store_durability, HYB_DURABILITY_FULL);
        ck_assert_uint_eq(c.store_max_value_bytes, 2 * MIB);
        ck_assert_uint_eq(c.store_max_depth, 8);
        ck_assert_uint_eq(c.store_max_read_keys, 500);
        ck_assert_uint_eq(c.store_max_bytes, 1024 * MIB);
        ck_assert_uint_eq(c.store_uid_max_keys, 1000);
        ck_assert_uint_eq(c.store_uid_max_bytes, 64 * MIB);
        ck_assert(c.store_policy);
        ck_assert_uint_eq(c.n_store_rules, 2);
        ck_assert(!c.store_rules[0].any_uid);
        ck_assert_uint_eq(c.store_rules[0].uid, 7);
        ck_assert_str_eq(c.store_rules[0].app, "org.x.*");
        ck_assert_str_eq(c.store_rules[0].furi, "/a/+/t");
        ck_assert_uint_eq(c.store_rules[0].rights, BROKER_STORE_READ | BROKER_STORE_SUBSCRIBE);
        ck_assert(c.store_rules[1].any_uid);
        ck_assert_ptr_null(c.store_rules[1].app);
        ck_assert_uint_eq(c.store_rules[1].rights, BROKER_STORE_WRITE | BROKER_STORE_DELETE);
        /* An empty policy.store allows nothing (it is given); path ~ is memory again. */
        load_ok(&c, "store: {path: ~}\npolicy: {store: []}\n");
        ck_assert_ptr_null(c.store_path);
        ck_assert(c.store_policy);
        ck_assert_uint_eq(c.n_store_rules, 0);
        broker_config_clear(&c);
}
END_TEST

TCase *bp_config_policy_tcase(void)
{
        TCase *tc = tcase_create("config_policy");

        tcase_add_test(tc, test_config_policy);
        tcase_add_test(tc, test_config_store);
        return tc;
}
