/* SPDX-License-Identifier: MIT */
/*
 * buspieces suite, part 2: globs and access lists (doc/protocol.md "Access
 * patterns", "Events" patterns).  The table cases are in acl.txt.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "bus/acl.h"
#include "buspieces.h"
#include "testutil.h"

struct acl_stats {
        int cases;
        int negative; /* deny or 406 */
};

static void acl_line(int line_no, char *line, void *ud)
{
        struct acl_stats *st = ud;
        char *f[5], *list, *value, *self, *owner;
        bus_acl *acl = NULL;
        size_t vlen;
        hyb_error e;
        int r;

        ck_assert_msg(bp_split(line, f, 5) == 5, "acl.txt:%d: need 5 fields", line_no);
        list = bp_decode(f[0], NULL);
        value = bp_decode(f[1], &vlen);
        self = strcmp(f[2], "-") == 0 ? NULL : f[2];
        owner = strcmp(f[3], "-") == 0 ? NULL : f[3];
        hyb_error_clear(&e);

        r = bus_acl_compile(list, &acl, &e);
        if (strcmp(f[4], "406") == 0) {
                ck_assert_msg(r == HYB_E_NOT_ACCEPTABLE, "acl.txt:%d: list '%s' gave %d, not 406",
                              line_no, f[0], r);
                ck_assert_int_eq(e.code, HYB_E_NOT_ACCEPTABLE);
                ck_assert_msg(e.message[0] != '\0', "acl.txt:%d: no message", line_no);
                ck_assert_msg(e.offset >= 0 && (size_t)e.offset <= strlen(list),
                              "acl.txt:%d: offset %ld", line_no, e.offset);
                st->negative++;
        } else {
                bool want = strcmp(f[4], "allow") == 0;

                ck_assert_msg(want || strcmp(f[4], "deny") == 0, "acl.txt:%d: bad expectation",
                              line_no);
                ck_assert_msg(r == 0, "acl.txt:%d: list '%s' refused: %s", line_no, f[0],
                              e.message);
                ck_assert_msg(bus_acl_allows(acl, value, vlen, self, owner) == want,
                              "acl.txt:%d: '%s' on '%s' should %s", line_no, f[0], f[1], f[4]);
                if (!want)
                        st->negative++;
                bus_acl_free(acl);
        }
        st->cases++;
        free(list);
        free(value);
}

START_TEST(test_acl_table)
{
        struct acl_stats st = { 0 };

        test_each_line(test_data_path("bus/acl.txt"), acl_line, &st);
        ck_assert_int_ge(st.cases, 90);
        ck_assert_int_ge(st.negative, st.cases * 3 / 10);
}
END_TEST

static void expect_bad_list(const char *text, long offset, const char *needle)
{
        bus_acl *acl = NULL;
        hyb_error e;

        hyb_error_clear(&e);
        ck_assert_int_eq(bus_acl_compile(text, &acl, &e), HYB_E_NOT_ACCEPTABLE);
        ck_assert_ptr_null(acl);
        ck_assert_int_eq(e.offset, offset);
        ck_assert_msg(strstr(e.message, needle), "'%s': message '%s' lacks '%s'", text, e.message,
                      needle);
}

START_TEST(test_acl_errors_point_at_item)
{
        /* Offsets are into the text as written, before normalisation. */
        expect_bad_list("a, !", 3, "'!'");
        expect_bad_list("a ,; $bogus", 5, "$bogus");
        expect_bad_list("org.*, a/b", 8, "'/'");
        expect_bad_list(" ,; ", 0, "no items");
        expect_bad_list("x, !$nope", 4, "$nope");
}
END_TEST

START_TEST(test_acl_default_and_text)
{
        bus_acl *acl = NULL;

        /* No list (NULL or "") is "*". */
        ck_assert_int_eq(bus_acl_compile(NULL, &acl, NULL), 0);
        ck_assert_str_eq(bus_acl_text(acl), "*");
        ck_assert(bus_acl_allows(acl, "anything", 8, NULL, NULL));
        acl = bus_acl_free(acl);
        ck_assert_ptr_null(acl);
        ck_assert_int_eq(bus_acl_compile("", &acl, NULL), 0);
        ck_assert_str_eq(bus_acl_text(acl), "*");
        bus_acl_free(acl);
        /* A registration that has no compiled list at all allows too. */
        ck_assert(bus_acl_allows(NULL, "x", 1, NULL, NULL));
        ck_assert_str_eq(bus_acl_text(NULL), "*");

        /* Separator runs collapse to ", "; the user's case is kept for display. */
        ck_assert_int_eq(bus_acl_compile("  !Foo* ,;;$self \t$OWNER,org.*;", &acl, NULL), 0);
        ck_assert_str_eq(bus_acl_text(acl), "!Foo*, $self, $OWNER, org.*");
        ck_assert(!bus_acl_allows(acl, "foobar", 6, "h", "o"));
        ck_assert(bus_acl_allows(acl, "O", 1, "h", "o"));
        ck_assert(bus_acl_allows(acl, "org.x", 5, "h", "o"));
        ck_assert(!bus_acl_allows(acl, "com.x", 5, "h", "o"));
        bus_acl_free(acl);
        /* Normalising can lengthen the text: one-byte separators become ", ". */
        ck_assert_int_eq(bus_acl_compile("a;b;c;d;e", &acl, NULL), 0);
        ck_assert_str_eq(bus_acl_text(acl), "a, b, c, d, e");
        ck_assert(bus_acl_allows(acl, "e", 1, NULL, NULL));
        bus_acl_free(acl);
        bus_acl_free(NULL);
}
END_TEST

START_TEST(test_acl_value_by_length)
{
        bus_acl *acl = NULL;

        /* The value is a (pointer, length) view, as cut out of a frame. */
        ck_assert_int_eq(bus_acl_compile("org.example, $self", &acl, NULL), 0);
        ck_assert(bus_acl_allows(acl, "org.example.lights", 11, NULL, NULL));
        ck_assert(!bus_acl_allows(acl, "org.example.lights", 12, NULL, NULL));
        ck_assert(bus_acl_allows(acl, "boxes", 3, "box", NULL));
        bus_acl_free(acl);
}
END_TEST

START_TEST(test_glob_basics)
{
        ck_assert(bus_glob_match("*", 1, "", 0));
        ck_assert(bus_glob_match("", 0, "", 0));
        ck_assert(!bus_glob_match("", 0, "a", 1));
        ck_assert(!bus_glob_match("?", 1, "", 0));
        ck_assert(bus_glob_match("TEMP*", 5, "temperature", 11));
        ck_assert(bus_glob_match("@localhost/org.example.*/*", 26,
                                 "@LOCALHOST/Org.Example.Lights/main", 34));
        ck_assert(!bus_glob_match("@localhost/org.example.*/*", 26,
                                  "@localhost/org.other/main", 25));
        ck_assert(bus_glob_match("*x", 2, "xxxx", 4));
        ck_assert(!bus_glob_match("*x", 2, "xxxy", 4));
        ck_assert(bus_glob_match("a*b?d", 5, "aXXbcd", 6));
        ck_assert(!bus_glob_match("a*b?d", 5, "aXXbd", 5));
        /* Everything but '*' and '?' is literal. */
        ck_assert(bus_glob_match("a[b]", 4, "a[b]", 4));
        ck_assert(!bus_glob_match("a[b]", 4, "ab", 2));
        ck_assert(bus_glob_is_literal("org.example", 11));
        ck_assert(bus_glob_is_literal("", 0));
        ck_assert(!bus_glob_is_literal("org.*", 5));
        ck_assert(!bus_glob_is_literal("a?", 2));
        /* plen bounds the pattern: "ab*" cut to "ab" is literal. */
        ck_assert(bus_glob_is_literal("ab*", 2));
        ck_assert(!bus_glob_match("ab*", 2, "abc", 3));
}
END_TEST

START_TEST(test_glob_no_blowup)
{
        /* A naive recursive matcher takes exponential time here; this one is O(n*m). */
        enum { N = 20000 };
        char *s = malloc(N), *p = malloc(2 * 40 + 2);
        size_t plen = 0;

        ck_assert_ptr_nonnull(s);
        ck_assert_ptr_nonnull(p);
        memset(s, 'a', N);
        for (int i = 0; i < 40; i++) {
                p[plen++] = '*';
                p[plen++] = 'a';
        }
        p[plen++] = '*';
        p[plen++] = 'b';
        ck_assert(!bus_glob_match(p, plen, s, N));
        s[N - 1] = 'b';
        ck_assert(bus_glob_match(p, plen, s, N));
        free(s);
        free(p);
}
END_TEST

TCase *bp_acl_data_tcase(void)
{
        TCase *tc = tcase_create("acl_table");

        tcase_add_test(tc, test_acl_table);
        return tc;
}

TCase *bp_acl_tcase(void)
{
        TCase *tc = tcase_create("acl");

        tcase_add_test(tc, test_acl_errors_point_at_item);
        tcase_add_test(tc, test_acl_default_and_text);
        tcase_add_test(tc, test_acl_value_by_length);
        tcase_add_test(tc, test_glob_basics);
        tcase_add_test(tc, test_glob_no_blowup);
        return tc;
}
