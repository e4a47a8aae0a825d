/* SPDX-License-Identifier: MIT */
/*
 * lib/cluster/map.c: the fixed mapping between the cluster scope and MQTT topics and
 * payloads (doc/cluster.md "Mapping between fURIs and topics"), shared by the daemon and by
 * programs without one.
 */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/map.h"
#include "hybrid/hybrid.h"

TCase *cluster_map_tcase(void);

static hyb_furi *F(const char *s)
{
        hyb_furi *f = NULL;

        ck_assert_int_ge(hyb_furi_parse(s, (size_t)-1, NULL, &f, NULL), 0);
        return f;
}

static char *topic(const char *prefix, const char *furi, int want)
{
        hyb_furi *f = F(furi);
        char *t = NULL;
        hyb_error e;
        int r;

        hyb_error_clear(&e);
        r = cluster_map_topic(prefix, f, &t, &e);
        ck_assert_msg(r == want, "%s: %d, wanted %d (%s)", furi, r, want, e.message);
        hyb_furi_unref(f);
        return t;
}

START_TEST(test_topics)
{
        char *t;

        t = topic(NULL, "//a/b/c", 0);
        ck_assert_str_eq(t, "a/b/c");
        free(t);
        t = topic("site1/", "//a/b", 0);
        ck_assert_str_eq(t, "site1/a/b");
        free(t);
        /* patterns are MQTT's own wildcards; a branch is its filter */
        t = topic(NULL, "//a/+/c", 0);
        ck_assert_str_eq(t, "a/+/c");
        free(t);
        t = topic(NULL, "//a/#", 0);
        ck_assert_str_eq(t, "a/#");
        free(t);
        t = topic(NULL, "//a/b/", 0);
        ck_assert_str_eq(t, "a/b/#");
        free(t);
        /* a segment that is a literal + is percent-encoded, never the wildcard */
        t = topic(NULL, "//a/%2B", 0);
        ck_assert_str_eq(t, "a/%2B");
        free(t);
        t = topic(NULL, "//a/b%20c", 0);
        ck_assert_str_eq(t, "a/b%20c");
        free(t);
        /* the reserved _hybrid/ */
        ck_assert_ptr_null(topic(NULL, "//_hybrid/call/x", HYB_E_FORBIDDEN));
}
END_TEST

static void visible(const char *prefix, const char *topic, const char *want)
{
        hyb_furi *f = cluster_map_furi_of_topic(prefix, topic);

        if (!want)
                ck_assert_msg(!f, "%s should not be visible, is %s", topic,
                              f ? hyb_furi_get_str(f) : "");
        else {
                ck_assert_msg(f != NULL, "%s should be visible as %s", topic, want);
                ck_assert_str_eq(hyb_furi_get_str(f), want);
        }
        hyb_furi_unref(f);
}

START_TEST(test_reverse)
{
        visible(NULL, "a/b", "//a/b");
        visible(NULL, "kitchen/temp", "//kitchen/temp");
        visible(NULL, "a/b%20c", "//a/b%20c");
        visible("site1/", "site1/a/b", "//a/b");
        visible("site1/", "a/b", NULL);          /* outside the prefix */
        visible(NULL, "$SYS/broker", NULL);      /* the broker's own */
        visible(NULL, "Kitchen/temp", NULL);     /* upper case first level */
        visible(NULL, "h.example/t", NULL);      /* a dot: a global fURI */
        visible(NULL, "/x", NULL);               /* empty first level */
        visible(NULL, "a//b", NULL);             /* an empty level */
        visible(NULL, "a/", NULL);
        visible(NULL, "a/b c", NULL);            /* raw bytes the canonical form encodes */
        visible(NULL, "_hybrid/presence/h", NULL);
        visible("p/", "p/_hybrid/call/h", NULL);
}
END_TEST

static void value(const char *payload, bool retain, int want, const char *text)
{
        hyb_obj *v = NULL;
        char *s = NULL;
        int r = cluster_map_value_of(payload, strlen(payload), retain, &v);

        ck_assert_msg(r == want, "'%s': %d, wanted %d", payload, r, want);
        if (text) {
                ck_assert_int_ge(hyb_obj_format(v, HYB_FORMAT_EXACT, &s), 0);
                ck_assert_str_eq(s, text);
                hyb_free(s);
        }
        hyb_obj_unref(v);
}

START_TEST(test_payloads)
{
        hyb_obj *v = NULL;
        char *big, *json = NULL;

        value("21.5", true, 0, "21.5");
        value("\"on\"", true, 0, "'on'");
        value("{\"t\":21.5}", false, 0, "[t=>21.5]");
        value("hot", true, 0, "'hot'");         /* not JSON: a str of its text */
        value("", true, 0, NULL);               /* an empty retained message: a delete */
        ck_assert_int_ge(cluster_map_value_of("", 0, true, &v), 0);
        ck_assert(hyb_obj_is_noobj(v));
        hyb_obj_unref(v);
        value("", false, 0, "''");              /* an empty plain message: an empty str */
        value("\xff\xfe", true, -EINVAL, NULL); /* neither JSON nor UTF-8 */
        big = malloc(CLUSTER_MAX_VALUE_BYTES + 2);
        ck_assert_ptr_nonnull(big);
        memset(big, '1', CLUSTER_MAX_VALUE_BYTES + 1);
        big[CLUSTER_MAX_VALUE_BYTES + 1] = 0;
        value(big, true, HYB_E_LIMIT, NULL);
        free(big);
        /* and back: the value's JSON */
        ck_assert_int_ge(hyb_obj_parse("[t=>21.5,unit=>'C']", (size_t)-1, &v, NULL), 0);
        ck_assert_int_ge(cluster_map_payload_of(v, &json, NULL), 0);
        ck_assert_str_eq(json, "{\"t\":21.5,\"unit\":\"C\"}");
        hyb_free(json);
        hyb_obj_unref(v);
}
END_TEST

START_TEST(test_mirror)
{
        hyb_furi *c = F("//a/b"), *m = NULL, *back = NULL;

        ck_assert_int_ge(cluster_map_mirror_of(c, &m), 0);
        ck_assert_str_eq(hyb_furi_get_str(m), "/a/b");
        ck_assert_int_ge(cluster_map_cluster_of(m, &back), 0);
        ck_assert(hyb_furi_equal(back, c));
        hyb_furi_unref(c);
        hyb_furi_unref(m);
        hyb_furi_unref(back);
}
END_TEST

TCase *cluster_map_tcase(void)
{
        TCase *tc = tcase_create("map");

        tcase_add_test(tc, test_topics);
        tcase_add_test(tc, test_reverse);
        tcase_add_test(tc, test_payloads);
        tcase_add_test(tc, test_mirror);
        return tc;
}
