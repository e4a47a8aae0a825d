/* SPDX-License-Identifier: MIT */
/*
 * buspieces suite, part 3: the broker's YAML config (spec/bus.md "The daemon's
 * config", doc/config.md).  Positions are 1-based line:column of the offending
 * node, counted by hand from the YAML text of each case.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "broker/config.h"
#include "buspieces.h"
#include "testutil.h"

#define KIB ((size_t)1024)
#define MIB (KIB * 1024)
#define GIB (MIB * 1024)

static int load_str(broker_config *c, const char *yaml)
{
        return broker_config_load_string(c, yaml, strlen(yaml), NULL);
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
        ck_assert_int_eq(broker_config_load_string(&c, "limits: {max_body: 1\n", 21, &e),
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
        load_ok(&c, "limits: {max_pending_calls: 4294967295, max_subscriptions: \"10\"}\n");
        ck_assert_uint_eq(c.max_pending_calls, 4294967295u);
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
        return tc;
}

TCase *bp_config_policy_tcase(void)
{
        TCase *tc = tcase_create("config_policy");

        tcase_add_test(tc, test_config_policy);
        return tc;
}
