/* SPDX-License-Identifier: MIT */
/*
 * buspieces suite, part 1: bus names (doc/protocol.md "Names").  The table cases
 * are in names.txt; the suite itself is assembled at the end of this file.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/names.h"
#include "common/util.h"
#include "buspieces.h"
#include "suites.h"
#include "testutil.h"

char *bp_decode(const char *in, size_t *ret_len)
{
        size_t cap = strlen(in) + 1, n = 0;
        char *out = malloc(cap);

        ck_assert_ptr_nonnull(out);
        for (const char *p = in; *p;) {
                char c, *end;
                long count;

                if (p[0] == '<' && p[1] && p[2] == '*') {
                        c = p[1];
                        count = strtol(p + 3, &end, 10);
                        ck_assert_msg(*end == '>' && count > 0, "bad repeat in '%s'", in);
                        cap += (size_t)count;
                        out = realloc(out, cap);
                        ck_assert_ptr_nonnull(out);
                        memset(out + n, c, (size_t)count);
                        n += (size_t)count;
                        p = end + 1;
                } else if (p[0] == '\\' && p[1] == 'x' && hex_digit(p[2]) >= 0 && hex_digit(p[3]) >= 0) {
                        out[n++] = (char)(hex_digit(p[2]) * 16 + hex_digit(p[3]));
                        p += 4;
                } else {
                        out[n++] = *p++;
                }
        }
        out[n] = '\0';
        if (ret_len)
                *ret_len = n;
        return out;
}

int bp_split(char *line, char **fields, int max)
{
        int n = 0;

        while (n < max) {
                char *tab = strchr(line, '\t');

                fields[n++] = line;
                if (!tab)
                        break;
                *tab = '\0';
                line = tab + 1;
        }
        return n;
}

struct names_stats {
        int cases;
        int refused;
};

/* Rebuilds "@host/app/runner[/name]" from the parsed views: they must cover the input exactly. */
static void check_views(const char *in, size_t len, const bus_name *n, bool member, int line_no)
{
        char buf[BUS_MEMBER_MAX + 64];
        int k;

        if (member)
                k = snprintf(buf, sizeof(buf), "@%.*s/%.*s/%.*s/%.*s", (int)n->host_len, n->host,
                             (int)n->app_len, n->app, (int)n->runner_len, n->runner,
                             (int)n->name_len, n->name);
        else
                k = snprintf(buf, sizeof(buf), "@%.*s/%.*s/%.*s", (int)n->host_len, n->host,
                             (int)n->app_len, n->app, (int)n->runner_len, n->runner);
        ck_assert_msg((size_t)k == len && memcmp(buf, in, len) == 0,
                      "names.txt:%d: views do not rebuild the name", line_no);
        if (!member)
                ck_assert_msg(n->name == NULL && n->name_len == 0, "names.txt:%d: name set",
                              line_no);
}

static void names_line(int line_no, char *line, void *ud)
{
        struct names_stats *st = ud;
        char *f[3];
        char *in;
        size_t len;
        bus_name n;
        hyb_error e;
        int r;

        ck_assert_msg(bp_split(line, f, 3) == 3, "names.txt:%d: need 3 fields", line_no);
        in = bp_decode(f[1], &len);
        hyb_error_clear(&e);
        memset(&n, 0xaa, sizeof(n));

        if (strcmp(f[0], "host") == 0)
                r = bus_name_check_host(in, len, &e);
        else if (strcmp(f[0], "app") == 0)
                r = bus_name_check_app(in, len, &e);
        else if (strcmp(f[0], "ident") == 0)
                r = bus_name_check_ident(in, len, &e);
        else if (strcmp(f[0], "endpoint") == 0)
                r = bus_name_parse_endpoint(in, len, &n, &e);
        else if (strcmp(f[0], "member") == 0)
                r = bus_name_parse_member(in, len, &n, &e);
        else
                ck_abort_msg("names.txt:%d: unknown kind '%s'", line_no, f[0]);

        if (strcmp(f[2], "ok") == 0) {
                ck_assert_msg(r == 0, "names.txt:%d: %s '%s' refused: %s", line_no, f[0], f[1],
                              e.message);
                if (strcmp(f[0], "endpoint") == 0 || strcmp(f[0], "member") == 0)
                        check_views(in, len, &n, f[0][0] == 'm', line_no);
        } else {
                ck_assert_msg(strcmp(f[2], "406") == 0, "names.txt:%d: bad expectation", line_no);
                ck_assert_msg(r == HYB_E_NOT_ACCEPTABLE, "names.txt:%d: %s '%s' gave %d, not 406",
                              line_no, f[0], f[1], r);
                ck_assert_int_eq(e.code, HYB_E_NOT_ACCEPTABLE);
                ck_assert_msg(e.message[0] != '\0', "names.txt:%d: no message", line_no);
                ck_assert_msg(e.offset >= 0 && (size_t)e.offset <= len,
                              "names.txt:%d: offset %ld outside 0..%zu", line_no, e.offset, len);
                st->refused++;
        }
        st->cases++;
        free(in);
}

START_TEST(test_names_table)
{
        struct names_stats st = { 0 };

        test_each_line(test_data_path("bus/names.txt"), names_line, &st);
        /* Guard against a truncated or unreadable table passing vacuously. */
        ck_assert_int_ge(st.cases, 100);
        ck_assert_int_ge(st.refused, st.cases * 3 / 10);
}
END_TEST

START_TEST(test_parse_member_views)
{
        static const char s[] = "@LocalHost/Org.Example.Lights/Main/getState";
        bus_name n;

        ck_assert_int_eq(bus_name_parse_member(s, strlen(s), &n, NULL), 0);
        ck_assert_uint_eq(n.host_len, 9);
        ck_assert_int_eq(memcmp(n.host, "LocalHost", 9), 0);
        ck_assert_uint_eq(n.app_len, 18);
        ck_assert_int_eq(memcmp(n.app, "Org.Example.Lights", 18), 0);
        ck_assert_uint_eq(n.runner_len, 4);
        ck_assert_int_eq(memcmp(n.runner, "Main", 4), 0);
        ck_assert_uint_eq(n.name_len, 8);
        ck_assert_int_eq(memcmp(n.name, "getState", 8), 0);
        /* Views point into the input (borrowed, case kept for display). */
        ck_assert_ptr_eq(n.host, s + 1);
        ck_assert_ptr_eq(n.name, s + 35);
}
END_TEST

START_TEST(test_parse_endpoint_not_nul_terminated)
{
        /* The length decides, not a NUL: the frame header is parsed in place. */
        static const char s[] = "@localhost/app/mainXXXX";
        bus_name n;

        ck_assert_int_eq(bus_name_parse_endpoint(s, 19, &n, NULL), 0);
        ck_assert_uint_eq(n.runner_len, 4);
        ck_assert_int_eq(bus_name_parse_endpoint(s, sizeof(s) - 1, &n, NULL), 0);
        ck_assert_uint_eq(n.runner_len, 8);
        ck_assert_int_eq(bus_name_check_ident("main!", 4, NULL), 0);
        ck_assert_int_eq(bus_name_check_ident("main!", 5, NULL), HYB_E_NOT_ACCEPTABLE);
}
END_TEST

static void expect_406(int r, const hyb_error *e, long offset, const char *part)
{
        ck_assert_int_eq(r, HYB_E_NOT_ACCEPTABLE);
        ck_assert_int_eq(e->code, HYB_E_NOT_ACCEPTABLE);
        ck_assert_int_eq(e->offset, offset);
        ck_assert_msg(strstr(e->message, part) != NULL, "message '%s' does not name %s",
                      e->message, part);
}

START_TEST(test_error_offsets)
{
        hyb_error e;
        char big[200];
        int r;

        /* '-' of "my-app" is byte 13 of the whole name. */
        r = bus_name_parse_endpoint("@localhost/my-app/main", 22, NULL, &e);
        expect_406(r, &e, 13, "app");
        r = bus_name_parse_endpoint("@local_host/app/main", 20, NULL, &e);
        expect_406(r, &e, 6, "host");
        r = bus_name_parse_member("@localhost/app/main/get-x", 25, NULL, &e);
        expect_406(r, &e, 23, "name");
        r = bus_name_parse_endpoint("@localhost/app/9main", 20, NULL, &e);
        expect_406(r, &e, 15, "runner");
        r = bus_name_parse_endpoint("localhost/app/main", 18, NULL, &e);
        expect_406(r, &e, 0, "@");
        r = bus_name_check_host("-host", 5, &e);
        expect_406(r, &e, 0, "host");
        r = bus_name_check_host("host-", 5, &e);
        expect_406(r, &e, 4, "host");
        r = bus_name_check_host("a..b", 4, &e);
        expect_406(r, &e, 2, "host");
        r = bus_name_check_app("org..x", 6, &e);
        expect_406(r, &e, 4, "app");
        /* A length error points at the first byte past the limit. */
        memset(big, 'a', sizeof(big));
        r = bus_name_check_app(big, 128, &e);
        expect_406(r, &e, 127, "app");
        r = bus_name_check_ident(big, 64, &e);
        expect_406(r, &e, 63, "name");
        ck_assert_int_eq(bus_name_check_app(big, 127, &e), 0);
        ck_assert_int_eq(bus_name_check_ident(big, 63, &e), 0);
}
END_TEST

START_TEST(test_equal_and_hash)
{
        ck_assert(bus_name_equal("Org.Example", 11, "org.EXAMPLE", 11));
        ck_assert(bus_name_equal("", 0, "", 0));
        ck_assert(!bus_name_equal("org.example", 11, "org.exampl", 10));
        ck_assert(!bus_name_equal("org.example", 11, "org.exampla", 11));
        /* ASCII letters only: 0x40 and 0x60 differ by the case bit but are not letters. */
        ck_assert(!bus_name_equal("@", 1, "`", 1));
        ck_assert(!bus_name_equal("[", 1, "{", 1));
        ck_assert_uint_eq(bus_name_hash("@LocalHost/App/Main", 19),
                          bus_name_hash("@localhost/app/main", 19));
        ck_assert_uint_ne(bus_name_hash("@localhost/app/main", 19),
                          bus_name_hash("@localhost/app/maim", 19));
        ck_assert_uint_ne(bus_name_hash("a", 1), bus_name_hash("b", 1));
        ck_assert_uint_ne(bus_name_hash("", 0), bus_name_hash("a", 1));
        /* The length bounds the hash as it bounds the comparison. */
        ck_assert_uint_eq(bus_name_hash("mainXX", 4), bus_name_hash("MAIN", 4));
}
END_TEST

TCase *bp_names_data_tcase(void)
{
        TCase *tc = tcase_create("names_table");

        tcase_add_test(tc, test_names_table);
        return tc;
}

TCase *bp_names_tcase(void)
{
        TCase *tc = tcase_create("names");

        tcase_add_test(tc, test_parse_member_views);
        tcase_add_test(tc, test_parse_endpoint_not_nul_terminated);
        tcase_add_test(tc, test_error_offsets);
        tcase_add_test(tc, test_equal_and_hash);
        return tc;
}

Suite *buspieces_suite(void)
{
        Suite *s = suite_create("buspieces");

        suite_add_tcase(s, bp_names_data_tcase());
        suite_add_tcase(s, bp_names_tcase());
        suite_add_tcase(s, bp_acl_data_tcase());
        suite_add_tcase(s, bp_acl_tcase());
        suite_add_tcase(s, bp_config_tcase());
        suite_add_tcase(s, bp_config_limits_tcase());
        suite_add_tcase(s, bp_config_policy_tcase());
        suite_add_tcase(s, bp_store_quota_tcase());
        suite_add_tcase(s, bp_ws_tcase());
        return s;
}
