/* SPDX-License-Identifier: MIT */
/*
 * hybrid/furi.h: parse, format, scopes, matching, within, key order and the
 * builders.  Most cases live in the tests/furi text files, written from
 * doc/store.md; the few here need code (parts, limits, threads), and the
 * differential test of the parser's fast path (furi-diff.h) runs over all of them.
 */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "furi-diff.h"
#include "hybrid/furi.h"
#include "suites.h"
#include "testutil.h"

/* ---- data file helpers ---- */

typedef struct text {
        char *s;
        size_t len;
} text;

/* Expands `{N*x}` (nested allowed), `\xHH` and `\\`; `<>` alone is the empty text. */
static size_t expand_into(const char *s, size_t n, char *out, size_t cap)
{
        size_t o = 0;

        for (size_t i = 0; i < n; i++) {
                if (s[i] == '{' && i + 1 < n && s[i + 1] >= '0' && s[i + 1] <= '9') {
                        char *end;
                        long rep = strtol(s + i + 1, &end, 10);
                        size_t j = (size_t)(end - s), depth = 1, k;
                        ck_assert_msg(*end == '*', "bad repeat in %s", s);
                        for (k = j + 1; k < n && depth; k++)
                                depth += s[k] == '{' ? 1 : s[k] == '}' ? -1 : 0;
                        ck_assert_msg(depth == 0, "unbalanced repeat in %s", s);
                        for (long r = 0; r < rep; r++)
                                o += expand_into(s + j + 1, k - 1 - (j + 1), out + o, cap - o);
                        i = k - 1;
                } else if (s[i] == '\\' && i + 3 < n && s[i + 1] == 'x') {
                        char hex[3] = { s[i + 2], s[i + 3], 0 };
                        ck_assert_uint_lt(o, cap);
                        out[o++] = (char)strtol(hex, NULL, 16);
                        i += 3;
                } else if (s[i] == '\\' && i + 1 < n && s[i + 1] == '\\') {
                        ck_assert_uint_lt(o, cap);
                        out[o++] = '\\';
                        i++;
                } else {
                        ck_assert_uint_lt(o, cap);
                        out[o++] = s[i];
                }
        }
        return o;
}

static text expand(const char *s)
{
        static const size_t cap = 1 << 16;
        text t = { malloc(cap + 1), 0 };

        ck_assert_ptr_nonnull(t.s);
        if (strcmp(s, "<>") != 0)
                t.len = expand_into(s, strlen(s), t.s, cap);
        t.s[t.len] = '\0';
        return t;
}

/* Splits line at TABs into at most max fields; returns how many. */
static int split_tabs(char *line, char **f, int max)
{
        int n = 0;

        f[n++] = line;
        for (char *p = line; *p && n < max; p++)
                if (*p == '\t') {
                        *p = '\0';
                        f[n++] = p + 1;
                }
        return n;
}

static hyb_furi *must_parse(const char *s, int line_no)
{
        text t = expand(s);
        hyb_furi *f = NULL;
        hyb_error e;
        int r = hyb_furi_parse(t.s, t.len, NULL, &f, &e);

        ck_assert_msg(r == 0, "line %d: parse of '%s' failed: %s", line_no, s, r < 0 ? e.message : "");
        free(t.s);
        return f;
}

static int err_code(const char *name)
{
        if (strcmp(name, "PARSE") == 0 || strcmp(name, "HYB_E_PARSE") == 0)
                return HYB_E_PARSE;
        if (strcmp(name, "LIMIT") == 0 || strcmp(name, "HYB_E_LIMIT") == 0)
                return HYB_E_LIMIT;
        if (strcmp(name, "EINVAL") == 0)
                return -EINVAL;
        if (strcmp(name, "ENOENT") == 0)
                return -ENOENT;
        ck_abort_msg("unknown error name %s", name);
        return 0;
}

/* ---- parse.txt: canonical form, round trip, error code and offset ---- */

static void check_parse_line(int no, char *line, void *ud)
{
        char *f[3];
        int n = split_tabs(line, f, 3), r;
        text in = expand(f[0]);
        hyb_furi *x = NULL, *y = NULL;
        hyb_error e;

        ck_assert_msg(n >= 2, "parse.txt:%d: need 2 or 3 fields", no);
        hyb_error_clear(&e);
        r = hyb_furi_parse(in.s, in.len, NULL, &x, &e);
        if (n == 3) {
                char want[32];
                long off = strtol(f[2], NULL, 10);
                ck_assert_msg(r == err_code(f[1]), "parse.txt:%d: '%s' gave %s (%s), want %s", no,
                              f[0], hyb_err_name(r), r < 0 ? e.message : hyb_furi_get_str(x), f[1]);
                ck_assert_int_eq(e.code, r);
                ck_assert_msg(e.offset == off, "parse.txt:%d: '%s' offset %ld, want %ld (%s)", no,
                              f[0], e.offset, off, e.message);
                snprintf(want, sizeof(want), "at offset %ld", off);
                ck_assert_msg(strstr(e.message, want), "parse.txt:%d: message '%s' lacks '%s'", no,
                              e.message, want);
                ck_assert_ptr_null(x);
        } else {
                text exp = expand(f[1]);
                ck_assert_msg(r == 0, "parse.txt:%d: '%s' failed: %s", no, f[0], e.message);
                ck_assert_msg(strcmp(hyb_furi_get_str(x), exp.s) == 0, "parse.txt:%d: '%s' -> '%s', want '%s'",
                              no, f[0], hyb_furi_get_str(x), exp.s);
                /* parse(format(x)) == x, and the canonical text is a fixed point. */
                r = hyb_furi_parse(hyb_furi_get_str(x), (size_t)-1, NULL, &y, &e);
                ck_assert_msg(r == 0, "parse.txt:%d: re-parse of '%s' failed: %s", no,
                              hyb_furi_get_str(x), e.message);
                ck_assert_str_eq(hyb_furi_get_str(y), hyb_furi_get_str(x));
                ck_assert(hyb_furi_equal(x, y));
                ck_assert_int_eq(hyb_furi_compare(x, y), 0);
                ck_assert(hyb_furi_hash(x) == hyb_furi_hash(y));
                ck_assert_int_eq(hyb_furi_is_pattern(x), hyb_furi_is_pattern(y));
                if (!hyb_furi_is_pattern(x))
                        ck_assert(hyb_furi_match(x, y));
                hyb_furi_unref(y);
                free(exp.s);
        }
        hyb_furi_unref(x);
        free(in.s);
        (*(int *)ud)++;
}

START_TEST(test_parse_file)
{
        int n = 0;

        test_each_line(test_data_path("furi/parse.txt"), check_parse_line, &n);
        ck_assert_int_ge(n, 150);
}
END_TEST

/* ---- match.txt and within.txt ---- */

static void check_match_line(int no, char *line, void *ud)
{
        char *f[3];
        hyb_furi *a, *p;
        bool want;

        ck_assert_msg(split_tabs(line, f, 3) == 3, "%s:%d: need 3 fields", (char *)ud, no);
        want = strcmp(f[2], "true") == 0;
        ck_assert_msg(want || strcmp(f[2], "false") == 0, "%s:%d: true or false", (char *)ud, no);
        a = must_parse(f[0], no);
        p = must_parse(f[1], no);
        ck_assert_msg(hyb_furi_match(a, p) == want, "%s:%d: match('%s', '%s') should be %s",
                      (char *)ud, no, hyb_furi_get_str(a), hyb_furi_get_str(p), f[2]);
        /* Every fURI and pattern is within itself. */
        ck_assert(hyb_furi_match(a, a));
        ck_assert(hyb_furi_match(p, p));
        hyb_furi_unref(a);
        hyb_furi_unref(p);
}

START_TEST(test_match_file)
{
        ck_assert_int_ge(test_each_line(test_data_path("furi/match.txt"), check_match_line,
                                        "match.txt"), 80);
}
END_TEST

START_TEST(test_within_file)
{
        ck_assert_int_ge(test_each_line(test_data_path("furi/within.txt"), check_match_line,
                                        "within.txt"), 40);
}
END_TEST

/* ---- order.txt ---- */

static int sign(int x)
{
        return x < 0 ? -1 : x > 0;
}

static void check_order_line(int no, char *line, void *ud)
{
        char *f[3];
        hyb_furi *a, *b;
        int want;

        ck_assert_msg(split_tabs(line, f, 3) == 3, "order.txt:%d: need 3 fields", no);
        want = f[1][0] == '<' ? -1 : f[1][0] == '>' ? 1 : 0;
        a = must_parse(f[0], no);
        b = must_parse(f[2], no);
        ck_assert_msg(sign(hyb_furi_compare(a, b)) == want, "order.txt:%d: compare('%s', '%s') = %d",
                      no, hyb_furi_get_str(a), hyb_furi_get_str(b), hyb_furi_compare(a, b));
        ck_assert_int_eq(sign(hyb_furi_compare(b, a)), -want);
        ck_assert_int_eq(hyb_furi_equal(a, b), want == 0);
        if (want == 0)
                ck_assert(hyb_furi_hash(a) == hyb_furi_hash(b));
        hyb_furi_unref(a);
        hyb_furi_unref(b);
}

START_TEST(test_order_file)
{
        ck_assert_int_ge(test_each_line(test_data_path("furi/order.txt"), check_order_line, NULL),
                         40);
}
END_TEST

/* A sort of the order.txt left-hand sides must be transitive: check every triple. */
START_TEST(test_order_transitive)
{
        static const char *keys[] = { "x/2", "x/10", "x/1a", "x/a", "x/02", "x/+", "x/%2B", "x",
                                      "x/", "x/2/", "/x", "//h/x", "x/99999999999999999999",
                                      "x/B", "x/\xc3\xa9", "x/0", "x/00", "" };
        enum { N = sizeof(keys) / sizeof(keys[0]) };
        hyb_furi *f[N];

        for (int i = 0; i < N; i++)
                ck_assert_int_eq(hyb_furi_parse(keys[i], (size_t)-1, NULL, &f[i], NULL), 0);
        for (int i = 0; i < N; i++)
                for (int j = 0; j < N; j++)
                        for (int k = 0; k < N; k++)
                                if (hyb_furi_compare(f[i], f[j]) < 0 && hyb_furi_compare(f[j], f[k]) < 0)
                                        ck_assert_msg(hyb_furi_compare(f[i], f[k]) < 0,
                                                      "not transitive: %s < %s < %s", keys[i],
                                                      keys[j], keys[k]);
        for (int i = 0; i < N; i++)
                hyb_furi_unref(f[i]);
}
END_TEST

/* ---- scope.txt ---- */

static void check_scope_line(int no, char *line, void *ud)
{
        static const char *names[] = { "program", "home", "host", "cluster", "global" };
        char *f[2];
        hyb_furi *a;

        ck_assert_msg(split_tabs(line, f, 2) == 2, "scope.txt:%d: need 2 fields", no);
        a = must_parse(f[0], no);
        ck_assert_msg(strcmp(names[hyb_furi_get_scope(a)], f[1]) == 0, "scope.txt:%d: '%s' is %s",
                      no, f[0], names[hyb_furi_get_scope(a)]);
        hyb_furi_unref(a);
}

START_TEST(test_scope_file)
{
        ck_assert_int_ge(test_each_line(test_data_path("furi/scope.txt"), check_scope_line, NULL),
                         15);
}
END_TEST

/* ---- build.txt ---- */

static void check_expect(int no, const char *op, int r, hyb_furi *got, const char *want,
                         const hyb_error *e)
{
        if (strncmp(want, "ERROR:", 6) == 0) {
                char name[32];
                const char *colon = strchr(want + 6, ':');
                size_t n = colon ? (size_t)(colon - want - 6) : strlen(want + 6);
                snprintf(name, sizeof(name), "%.*s", (int)n, want + 6);
                ck_assert_msg(r == err_code(name), "build.txt:%d: %s gave %s, want %s", no, op,
                              hyb_err_name(r), name);
                if (colon)
                        ck_assert_msg(e->offset == strtol(colon + 1, NULL, 10),
                                      "build.txt:%d: offset %ld (%s)", no, e->offset, e->message);
                return;
        }
        ck_assert_msg(r >= 0, "build.txt:%d: %s failed: %s %s", no, op, hyb_err_name(r), e->message);
        text t = expand(want);
        ck_assert_msg(strcmp(hyb_furi_get_str(got), t.s) == 0, "build.txt:%d: %s gave '%s', want '%s'",
                      no, op, hyb_furi_get_str(got), t.s);
        free(t.s);
}

static void check_build_line(int no, char *line, void *ud)
{
        char *f[4];
        hyb_furi *a, *b = NULL, *got = NULL;
        hyb_error e;
        int r = 0;

        ck_assert_msg(split_tabs(line, f, 4) == 4, "build.txt:%d: need 4 fields", no);
        hyb_error_clear(&e);
        a = must_parse(f[1], no);
        if (strcmp(f[0], "extend") == 0 || strcmp(f[0], "resolve") == 0) {
                b = must_parse(f[2], no);
                r = f[0][0] == 'e' ? hyb_furi_extend(a, b, &got, &e) : hyb_furi_resolve(a, b, &got, &e);
                check_expect(no, f[0], r, got, f[3], &e);
        } else if (strcmp(f[0], "shift") == 0) {
                r = hyb_furi_shift(a, strtol(f[2], NULL, 10), &got);
                check_expect(no, f[0], r, got, f[3], &e);
        } else if (strcmp(f[0], "prefix") == 0) {
                r = hyb_furi_prefix(a, strtoul(f[2], NULL, 10), &got);
                check_expect(no, f[0], r, got, f[3], &e);
        } else if (strcmp(f[0], "strip") == 0) {
                r = hyb_furi_strip_query(a, &got);
                check_expect(no, f[0], r, got, f[3], &e);
                ck_assert_ptr_null(hyb_furi_get_query(got));
        } else if (strcmp(f[0], "split") == 0) {
                char *name = NULL;
                r = hyb_furi_split_instruction(a, &got, &name);
                if (strcmp(f[3], "none") == 0) {
                        ck_assert_int_eq(r, 0);
                        ck_assert_ptr_null(got);
                } else if (strncmp(f[3], "ERROR:", 6) == 0) {
                        check_expect(no, f[0], r, NULL, f[3], &e);
                } else {
                        char *sp = strchr(f[3], ' ');
                        *sp = '\0';
                        ck_assert_int_eq(r, 1);
                        ck_assert_str_eq(hyb_furi_get_str(got), f[3]);
                        ck_assert_str_eq(name, sp + 1);
                }
                hyb_free(name);
        } else if (strcmp(f[0], "has") == 0) {
                ck_assert_msg(hyb_furi_query_has(a, f[2]) == (strcmp(f[3], "true") == 0),
                              "build.txt:%d: query_has", no);
        } else if (strcmp(f[0], "value") == 0) {
                const char *v = NULL;
                size_t len = 99;
                r = hyb_furi_get_query_value(a, f[2], &v, &len);
                if (strncmp(f[3], "ERROR:", 6) == 0) {
                        check_expect(no, f[0], r, NULL, f[3], &e);
                } else {
                        text t = expand(f[3]);
                        ck_assert_int_eq(r, 0);
                        ck_assert_uint_eq(len, t.len);
                        ck_assert(memcmp(v, t.s, len) == 0);
                        free(t.s);
                }
        } else {
                ck_abort_msg("build.txt:%d: unknown op %s", no, f[0]);
        }
        if (got && r >= 0 && strcmp(f[0], "split") != 0) {
                /* A built fURI is a parsed one: its text parses back to it. */
                hyb_furi *again = must_parse(hyb_furi_get_str(got), no);
                ck_assert(hyb_furi_equal(again, got));
                hyb_furi_unref(again);
        }
        hyb_furi_unref(got);
        hyb_furi_unref(a);
        hyb_furi_unref(b);
}

START_TEST(test_build_file)
{
        ck_assert_int_ge(test_each_line(test_data_path("furi/build.txt"), check_build_line, NULL),
                         60);
}
END_TEST

/* ---- parts, limits, API corners ---- */

START_TEST(test_parts)
{
        hyb_furi *f;
        const char *s;
        size_t len;

        ck_assert_int_eq(hyb_furi_parse("bus://U%40x@Kitchen.Example:8080/a%2Fb/+/%2B/#/?k=v&sub",
                                        (size_t)-1, NULL, &f, NULL), 0);
        ck_assert_str_eq(hyb_furi_get_scheme(f), "bus");
        ck_assert_str_eq(hyb_furi_get_user(f), "U@x");
        ck_assert_str_eq(hyb_furi_get_host(f), "kitchen.example");
        ck_assert_int_eq(hyb_furi_get_port(f), 8080);
        ck_assert_str_eq(hyb_furi_get_query(f), "k=v&sub");
        ck_assert(hyb_furi_is_absolute(f));
        ck_assert(hyb_furi_is_branch(f));
        ck_assert(hyb_furi_is_pattern(f));
        ck_assert_int_eq(hyb_furi_get_scope(f), HYB_SCOPE_GLOBAL);
        ck_assert_uint_eq(hyb_furi_get_n_segments(f), 4);
        s = hyb_furi_get_segment(f, 0, &len);
        ck_assert_uint_eq(len, 3);
        ck_assert(memcmp(s, "a/b", 3) == 0);
        ck_assert_int_eq(hyb_furi_get_segment_kind(f, 0), HYB_SEG_LITERAL);
        ck_assert_int_eq(hyb_furi_get_segment_kind(f, 1), HYB_SEG_PLUS);
        s = hyb_furi_get_segment(f, 2, &len);
        ck_assert_uint_eq(len, 1);
        ck_assert_int_eq(s[0], '+');
        ck_assert_int_eq(hyb_furi_get_segment_kind(f, 2), HYB_SEG_LITERAL);
        ck_assert_int_eq(hyb_furi_get_segment_kind(f, 3), HYB_SEG_HASH);
        ck_assert_ptr_null(hyb_furi_get_segment(f, 4, &len));
        ck_assert_str_eq(hyb_furi_get_str(f), "bus://U%40x@kitchen.example:8080/a%2Fb/+/%2B/#/?k=v&sub");
        ck_assert_str_eq(hyb_furi_get_path_str(f), "bus://U%40x@kitchen.example:8080/a%2Fb/+/%2B/#/");
        ck_assert_ptr_eq(hyb_furi_ref(f), f);
        hyb_furi_unref(f);
        ck_assert_ptr_null(hyb_furi_unref(f));
        ck_assert_ptr_null(hyb_furi_unref(NULL));

        /* Absent parts; a decoded segment may hold bytes that need encoding. */
        ck_assert_int_eq(hyb_furi_parse("a%00", 4, NULL, &f, NULL), HYB_E_PARSE);
        ck_assert_int_eq(hyb_furi_parse("a b/x", 3, NULL, &f, NULL), 0); /* explicit length */
        ck_assert_str_eq(hyb_furi_get_str(f), "a%20b");
        ck_assert_ptr_null(hyb_furi_get_scheme(f));
        ck_assert_ptr_null(hyb_furi_get_user(f));
        ck_assert_ptr_null(hyb_furi_get_host(f));
        ck_assert_int_eq(hyb_furi_get_port(f), -1);
        ck_assert_ptr_null(hyb_furi_get_query(f));
        ck_assert(!hyb_furi_is_absolute(f) && !hyb_furi_is_branch(f) && !hyb_furi_is_pattern(f));
        hyb_furi_unref(f);

        /* The host wildcard makes a pattern. */
        ck_assert_int_eq(hyb_furi_parse("//+/x", (size_t)-1, NULL, &f, NULL), 0);
        ck_assert(hyb_furi_is_pattern(f));
        ck_assert_str_eq(hyb_furi_get_host(f), "+");
        hyb_furi_unref(f);
}
END_TEST

START_TEST(test_custom_limits)
{
        hyb_furi_limits lim = { .max_length = 10, .max_segments = 2, .max_segment = 3 };
        hyb_furi *f = NULL;
        hyb_error e;

        ck_assert_int_eq(hyb_furi_parse("abc/def", (size_t)-1, &lim, &f, &e), 0);
        hyb_furi_unref(f);
        ck_assert_int_eq(hyb_furi_parse("abc/defg", (size_t)-1, &lim, &f, &e), HYB_E_LIMIT);
        ck_assert_int_eq(e.offset, 4);
        ck_assert_int_eq(hyb_furi_parse("a/b/c", (size_t)-1, &lim, &f, &e), HYB_E_LIMIT);
        ck_assert_int_eq(e.offset, 4);
        ck_assert_int_eq(hyb_furi_parse("abc/abc/..", (size_t)-1, &lim, &f, &e), 0);
        ck_assert_str_eq(hyb_furi_get_str(f), "abc/");
        hyb_furi_unref(f);
        ck_assert_int_eq(hyb_furi_parse("abc/abc/..x", (size_t)-1, &lim, &f, &e), HYB_E_LIMIT);
        ck_assert_int_eq(e.offset, 10);
        /* Raw bytes that grow when encoded count against the length limit. */
        ck_assert_int_eq(hyb_furi_parse("a b/c d", (size_t)-1, &lim, &f, &e), HYB_E_LIMIT);
        ck_assert_int_eq(e.offset, 4);
        /* The size stamp: members beyond an older caller's size are not read. */
        lim.size = offsetof(hyb_furi_limits, max_segments);
        ck_assert_int_eq(hyb_furi_parse("a/b/c", (size_t)-1, &lim, &f, &e), 0); /* default 32 segments */
        hyb_furi_unref(f);
        ck_assert_int_eq(hyb_furi_parse("abcdefghijk", (size_t)-1, &lim, &f, &e), HYB_E_LIMIT); /* max_length read */
        hyb_furi_limits_init(&lim);
        ck_assert_uint_eq(lim.size, sizeof lim);
        ck_assert_uint_eq(lim.max_length, 1024);
        ck_assert_uint_eq(lim.max_segments, 32);
        ck_assert_uint_eq(lim.max_segment, 255);
        /* Zero members mean the defaults. */
        lim = (hyb_furi_limits){ 0 };
        ck_assert_int_eq(hyb_furi_parse("a/b/c", (size_t)-1, &lim, &f, &e), 0);
        hyb_furi_unref(f);
        /* Larger limits than the defaults. */
        lim.max_segments = 100;
        lim.max_length = 4096;
        {
                char buf[400];
                for (int i = 0; i < 100; i++)
                        memcpy(buf + 2 * i, "/a", 2);
                ck_assert_int_eq(hyb_furi_parse(buf, 200, &lim, &f, &e), 0);
                ck_assert_uint_eq(hyb_furi_get_n_segments(f), 100);
                hyb_furi_unref(f);
                ck_assert_int_eq(hyb_furi_parse(buf, 200, NULL, &f, &e), HYB_E_LIMIT);
                ck_assert_int_eq(e.offset, 65);
        }
}
END_TEST

START_TEST(test_match_str)
{
        hyb_error e;

        ck_assert_int_eq(hyb_furi_match_str("/a/b", "/a/+", NULL), 1);
        ck_assert_int_eq(hyb_furi_match_str("/a/b", "/a/b/+", NULL), 0);
        ck_assert_int_eq(hyb_furi_match_str("/a//b", "/a/+", &e), HYB_E_PARSE);
        ck_assert_int_eq(e.offset, 3);
        ck_assert_int_eq(hyb_furi_match_str("/a/b", "/a/+x", &e), HYB_E_PARSE);
        ck_assert_int_eq(e.offset, 3);
        ck_assert_int_eq(hyb_furi_match_str(NULL, "a", NULL), -EINVAL);
}
END_TEST

static void *share_worker(void *arg)
{
        hyb_furi *f = arg;

        for (int i = 0; i < 10000; i++)
                hyb_furi_unref(hyb_furi_ref(f));
        return NULL;
}

/* Atomic reference counts: many threads taking and dropping references. */
START_TEST(test_refcount_threads)
{
        hyb_furi *f;
        pthread_t t[4];

        ck_assert_int_eq(hyb_furi_parse("/shared/x", (size_t)-1, NULL, &f, NULL), 0);
        for (int i = 0; i < 4; i++)
                ck_assert_int_eq(pthread_create(&t[i], NULL, share_worker, f), 0);
        for (int i = 0; i < 4; i++)
                pthread_join(t[i], NULL);
        ck_assert_str_eq(hyb_furi_get_str(f), "/shared/x");
        hyb_furi_unref(f);
}
END_TEST

/* ---- the fast path against the full grammar (furi-diff.h) ---- */

typedef struct diff_run {
        size_t n;       /* texts parsed (each with every limit set) */
        size_t fast;    /* ... of which the fast path took */
} diff_run;

/* Limits the texts are parsed with: the defaults, small ones, and ones just around the
 * lengths of the corpus's plain fURIs. */
static const hyb_furi_limits diff_limits[] = {
        { .size = sizeof(hyb_furi_limits), .max_length = 10, .max_segments = 2, .max_segment = 3 },
        { .size = sizeof(hyb_furi_limits), .max_length = 16, .max_segments = 3, .max_segment = 5 },
        { .size = sizeof(hyb_furi_limits), .max_length = 4096, .max_segments = 600, .max_segment = 1000 },
        { .size = sizeof(hyb_furi_limits), .max_segments = 1 },
};

static void diff_one(const char *s, size_t len, diff_run *run)
{
        char why[400];
        const char *d;
        bool fast;

        d = furi_diff_parse(s, len, NULL, &fast, why, sizeof(why));
        ck_assert_msg(!d, "'%.*s' (%zu bytes): %s", (int)len, s, len, d);
        run->n++;
        run->fast += fast;
        for (size_t i = 0; i < sizeof(diff_limits) / sizeof(diff_limits[0]); i++) {
                d = furi_diff_parse(s, len, &diff_limits[i], &fast, why, sizeof(why));
                ck_assert_msg(!d, "'%.*s' (%zu bytes), limits %zu: %s", (int)len, s, len, i, d);
        }
}

/* The text, and (when short) each of its prefixes and suffixes: cut through a `/`, a `.`
 * segment, a `%XX` or an authority, they are the tricky neighbours of the corpus. */
static void diff_text(const char *s, size_t len, diff_run *run)
{
        diff_one(s, len, run);
        if (len > 300)
                return;
        for (size_t i = 0; i < len; i++) {
                diff_one(s, i, run);
                diff_one(s + i + 1, len - i - 1, run);
        }
}

/* Every TAB-separated field of a data file line (inputs, canonical forms, patterns). */
static void diff_line(int no, char *line, void *ud)
{
        char *f[4];
        int n = split_tabs(line, f, 4);

        (void)no;
        for (int i = 0; i < n; i++) {
                text t = expand(f[i]);
                diff_text(t.s, t.len, ud);
                free(t.s);
        }
}

START_TEST(test_fast_path_differential)
{
        static const char *files[] = { "furi/parse.txt", "furi/match.txt", "furi/within.txt",
                                       "furi/order.txt", "furi/scope.txt", "furi/build.txt" };
        /* Around each condition of the fast path: the first byte, the trailing `/`, dots,
         * bytes that need an escape, a scheme or authority, the limits. */
        static const char *edges[] = {
                "", "/", "//", "///", "a/", "/a/", "a//", "/a//", "~", "~/", "~/a", "/~", "~a",
                "a/~", ".", "..", "...", "/.", "/..", "./", "../", "/./", "/../", "a/.", "a/..",
                "a/./b", "a/../b", "../a", "../../a", "/a/.b", "/a/..b", "/a/b.", "/a/b..",
                "/.a/", "/..a/", "/a b", "a b", " ", "/\x7f", "/\x1f", "/\xc3\xa9", "/a%", "/a%2",
                "/a%2F", "/%2E", "/%2e%2e", "+", "#", "/+", "/#", "/a/+/b", "/a/#", "a+b",
                "a#b", "/a?", "/a?b", "?", "/?/", "a:b", "a:/b", "a://", "a://b", "a://b/c",
                "+://b/c", "//h", "//h/a", "/sys/scheduler::spawn", "/a/b/c/", "a/b/c",
                "/bench/key/12345", "A/B", "/~/a", "\\", "/a\\b", "/a=b&c", "/[::1]", "/a]",
                "/@", "//@/", "/a:80", "/!$&'()*,;=", "/`{|}~^\"<>", "x/y/z/",
        };
        diff_run run = { 0 };
        char buf[1100];

        for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
                test_each_line(test_data_path(files[i]), diff_line, &run);
        for (size_t i = 0; i < sizeof(edges) / sizeof(edges[0]); i++)
                diff_text(edges[i], strlen(edges[i]), &run);
        /* The fuzz target's seeds: whole, and split at the first newline as it splits them. */
        for (int i = 1;; i++) {
                char rel[64];
                size_t len;
                char *data, *nl;

                snprintf(rel, sizeof(rel), "fuzz/corpus/furi/seed%02d", i);
                data = test_read_file(test_data_path(rel), &len);
                if (!data) {
                        ck_assert_int_ge(i, 30);
                        break;
                }
                diff_text(data, len, &run);
                nl = memchr(data, '\n', len);
                if (nl) {
                        diff_text(data, (size_t)(nl - data), &run);
                        diff_text(nl + 1, len - (size_t)(nl - data) - 1, &run);
                }
                free(data);
        }
        /* The default limits exactly and one past them: length, segments, segment length. */
        for (size_t len = 1020; len <= 1026; len++) {
                memset(buf, 'a', len);
                for (size_t i = 0; i < len; i += 8)
                        buf[i] = '/';
                diff_text(buf, len, &run);
        }
        for (size_t segs = 30; segs <= 34; segs++) {
                for (size_t i = 0; i < segs; i++)
                        memcpy(buf + 2 * i, "/s", 2);
                diff_text(buf, 2 * segs, &run);
                diff_text(buf, 2 * segs - 1, &run);
                buf[2 * segs] = '/';
                diff_text(buf, 2 * segs + 1, &run);
        }
        for (size_t seg = 253; seg <= 257; seg++) {
                buf[0] = '/';
                memset(buf + 1, 'k', seg);
                diff_text(buf, seg + 1, &run);
                buf[seg + 1] = '/';
                diff_text(buf, seg + 2, &run);
                memcpy(buf + seg + 2, "x", 1);
                diff_text(buf, seg + 3, &run);
        }
        /* Both paths are exercised, not one of them only. */
        ck_assert_uint_ge(run.fast, 2000);
        ck_assert_uint_ge(run.n - run.fast, 2000);
}
END_TEST

START_TEST(test_fast_path_takes)
{
        static const char *takes[] = { "", "/", "a", "/bench/key/12345", "a/b/", "/a/b/", "~/x",
                                       "/sys/scheduler::spawn", "/a.b/c..d/...", "/A/!$&'()*,;=~" };
        static const char *leaves[] = { "/a/./b", "/a/../b", "a/.", "/a b", "a?x", "//h/a",
                                        "x://h/a", "/a/%41", "/a/+", "/a/#", "/a//b", "//",
                                        "/\xc3\xa9", "/a\x7f" };
        hyb_furi_limits lim;
        hyb_furi *f = NULL;

        hyb_furi_limits_init(&lim);
        for (size_t i = 0; i < sizeof(takes) / sizeof(takes[0]); i++) {
                ck_assert_msg(furi_parse_fast(takes[i], strlen(takes[i]), &lim, &f) == 1,
                              "the fast path should take '%s'", takes[i]);
                f = hyb_furi_unref(f);
        }
        for (size_t i = 0; i < sizeof(leaves) / sizeof(leaves[0]); i++) {
                ck_assert_msg(furi_parse_fast(leaves[i], strlen(leaves[i]), &lim, &f) == 0,
                              "the fast path should leave '%s' to the full grammar", leaves[i]);
                ck_assert_ptr_null(f);
        }
        /* A limit reached: left to the full grammar, which reports it. */
        lim.max_segment = 3;
        ck_assert_int_eq(furi_parse_fast("/abcd", 5, &lim, &f), 0);
        lim.max_segment = 255;
        lim.max_segments = 2;
        ck_assert_int_eq(furi_parse_fast("/a/b/c", 6, &lim, &f), 0);
        ck_assert_int_eq(furi_parse_fast("/a/b/", 5, &lim, &f), 1);
        ck_assert_uint_eq(hyb_furi_get_n_segments(f), 2);
        ck_assert(hyb_furi_is_branch(f));
        ck_assert_str_eq(hyb_furi_get_segment(f, 1, NULL), "b");
        hyb_furi_unref(f);
}
END_TEST

Suite *furi_suite(void)
{
        Suite *s = suite_create("furi");
        TCase *tc = tcase_create("furi");

        tcase_add_test(tc, test_parse_file);
        tcase_add_test(tc, test_match_file);
        tcase_add_test(tc, test_within_file);
        tcase_add_test(tc, test_order_file);
        tcase_add_test(tc, test_order_transitive);
        tcase_add_test(tc, test_scope_file);
        tcase_add_test(tc, test_build_file);
        tcase_add_test(tc, test_parts);
        tcase_add_test(tc, test_custom_limits);
        tcase_add_test(tc, test_match_str);
        tcase_add_test(tc, test_refcount_threads);
        tcase_add_test(tc, test_fast_path_differential);
        tcase_add_test(tc, test_fast_path_takes);
        suite_add_tcase(s, tc);
        return s;
}
