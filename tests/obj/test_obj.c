/* SPDX-License-Identifier: MIT */
/*
 * hybrid/obj.h: text form both ways (tests/obj/text.txt), JSON both ways
 * (tests/obj/json.txt), reference counts, recs, equality/order/hash, limits.
 * Expected values come from doc/mmadt.md "Objs" and doc/store.md "Values".
 */
#include <check.h>
#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hybrid/obj.h"
#include "obj/obj-internal.h"
#include "suites.h"
#include "testutil.h"

static hyb_obj *P(const char *text)
{
        hyb_obj *o = NULL;
        hyb_error e;
        int r = hyb_obj_parse(text, (size_t)-1, &o, &e);

        ck_assert_msg(r == 0, "parse '%s': %s", text, e.message);
        return o;
}

static char *F(const hyb_obj *o, unsigned flags)
{
        char *s = NULL;

        ck_assert_int_eq(hyb_obj_format(o, flags, &s), 0);
        return s;
}

static int code_of(const char *name)
{
#define X(n, v, m) if (strcmp(name, #n) == 0) return v;
        HYB_ERRORS(X)
#undef X
        ck_abort_msg("unknown code name %s", name);
        return 0;
}

/* {NL} in a data file stands for a newline. */
static char *unescape_nl(const char *s)
{
        char *out = malloc(strlen(s) + 1), *w = out;

        ck_assert_ptr_nonnull(out);
        while (*s) {
                if (strncmp(s, "{NL}", 4) == 0) {
                        *w++ = '\n';
                        s += 4;
                } else
                        *w++ = *s++;
        }
        *w = '\0';
        return out;
}

static void split_tabs(char *line, char **f, int max, int *n)
{
        *n = 0;
        while (*n < max) {
                f[(*n)++] = line;
                line = strchr(line, '\t');
                if (!line)
                        break;
                *line++ = '\0';
        }
}

struct counts {
        int ok, err;
};

static void text_case(int line_no, char *line, void *ud)
{
        struct counts *c = ud;
        char *f[4], *lit, *repl, *exact;
        hyb_obj *o = NULL, *back = NULL;
        hyb_error e;
        int n, r;

        split_tabs(line, f, 4, &n);
        ck_assert_msg(n >= 3, "text.txt:%d: needs 3 fields", line_no);
        lit = unescape_nl(f[0]);
        r = hyb_obj_parse(lit, strlen(lit), &o, &e);
        if (strcmp(f[1], "ERROR") == 0) {
                ck_assert_msg(n == 4, "text.txt:%d: ERROR needs code and offset", line_no);
                ck_assert_msg(r == code_of(f[2]), "text.txt:%d: '%s' gave %s (%s), want %s",
                              line_no, f[0], hyb_err_name(r), r < 0 ? e.message : "", f[2]);
                ck_assert_msg(e.code == r && e.offset == atol(f[3]),
                              "text.txt:%d: '%s' offset %ld, want %s (%s)", line_no, f[0],
                              e.offset, f[3], e.message);
                ck_assert_int_ge(e.line, 1);
                ck_assert_int_ge(e.column, 1);
                ck_assert(strstr(e.message, "line ") != NULL);
                c->err++;
                free(lit);
                return;
        }
        ck_assert_msg(r == 0, "text.txt:%d: '%s' failed: %s", line_no, f[0], e.message);
        repl = F(o, HYB_FORMAT_REPL);
        exact = F(o, HYB_FORMAT_EXACT);
        ck_assert_msg(strcmp(repl, f[1]) == 0, "text.txt:%d: REPL form of '%s' is '%s', want '%s'",
                      line_no, f[0], repl, f[1]);
        ck_assert_msg(strcmp(exact, f[2]) == 0,
                      "text.txt:%d: EXACT form of '%s' is '%s', want '%s'", line_no, f[0], exact,
                      f[2]);
        /* parse(format(x)) == x */
        r = hyb_obj_parse(exact, strlen(exact), &back, &e);
        ck_assert_msg(r == 0, "text.txt:%d: EXACT '%s' does not parse: %s", line_no, exact,
                      e.message);
        ck_assert_msg(hyb_obj_equal(o, back), "text.txt:%d: '%s' reparsed unequal", line_no, exact);
        ck_assert_int_eq(hyb_obj_compare(o, back), 0);
        ck_assert(hyb_obj_hash(o) == hyb_obj_hash(back));
        free(repl);
        repl = F(back, HYB_FORMAT_EXACT);
        ck_assert_str_eq(repl, exact);
        free(repl);
        free(exact);
        free(lit);
        hyb_obj_unref(o);
        hyb_obj_unref(back);
        c->ok++;
}

START_TEST(test_text_file)
{
        struct counts c = { 0 };

        ck_assert_int_gt(test_each_line(test_data_path("obj/text.txt"), text_case, &c), 0);
        ck_assert_int_ge(c.ok, 100);
        ck_assert_int_ge(c.err, 50);
}
END_TEST

static void json_case(int line_no, char *line, void *ud)
{
        struct counts *c = ud;
        char *f[3], *out = NULL, *a, *b;
        hyb_obj *o = NULL, *want;
        hyb_error e;
        int n, r;

        split_tabs(line, f, 3, &n);
        ck_assert_msg(n >= 2, "json.txt:%d: needs 2 fields", line_no);
        if (strcmp(f[0], "ERROR") == 0) {
                ck_assert(n == 3);
                r = hyb_obj_from_json(f[2], strlen(f[2]), &o, &e);
                ck_assert_msg(r == code_of(f[1]), "json.txt:%d: '%s' gave %s (%s), want %s",
                              line_no, f[2], hyb_err_name(r), r < 0 ? e.message : "ok", f[1]);
                ck_assert(e.code == r && e.message[0]);
                c->err++;
                return;
        }
        if (strcmp(f[0], "TOERROR") == 0) {
                ck_assert(n == 3);
                want = P(f[2]);
                r = hyb_obj_to_json(want, &out, &e);
                ck_assert_msg(r == code_of(f[1]), "json.txt:%d: to_json '%s' gave %s, want %s",
                              line_no, f[2], hyb_err_name(r), f[1]);
                ck_assert(e.code == r && e.message[0]);
                hyb_obj_unref(want);
                c->err++;
                return;
        }
        want = P(f[1]);
        r = hyb_obj_from_json(f[0], strlen(f[0]), &o, &e);
        ck_assert_msg(r == 0, "json.txt:%d: '%s' failed: %s", line_no, f[0], e.message);
        a = F(o, HYB_FORMAT_EXACT);
        b = F(want, HYB_FORMAT_EXACT);
        ck_assert_msg(hyb_obj_equal(o, want) && strcmp(a, b) == 0,
                      "json.txt:%d: '%s' gave %s, want %s", line_no, f[0], a, b);
        if (n < 3) {
                r = hyb_obj_to_json(want, &out, &e);
                ck_assert_msg(r == 0, "json.txt:%d: to_json %s: %s", line_no, f[1], e.message);
                ck_assert_msg(strcmp(out, f[0]) == 0, "json.txt:%d: to_json %s is %s, want %s",
                              line_no, f[1], out, f[0]);
                free(out);
        } else
                ck_assert_str_eq(f[2], "from");
        free(a);
        free(b);
        hyb_obj_unref(o);
        hyb_obj_unref(want);
        c->ok++;
}

START_TEST(test_json_file)
{
        struct counts c = { 0 };

        ck_assert_int_gt(test_each_line(test_data_path("obj/json.txt"), json_case, &c), 0);
        ck_assert_int_ge(c.ok, 60);
        ck_assert_int_ge(c.err, 30);
}
END_TEST

/* A text that is one number alone is read without the parser around it: the same obj as the
 * number inside a lst (which the whole parser reads), for ints and reals of every form the
 * other tests use; with anything before or after it, it is not a number alone, and an out
 * of range number gets the same error either way. */
START_TEST(test_number_alone)
{
        static const char *const nums[] = {
                "0", "-0", "007", "-7", "42", "999999999999999999", "-9223372036854775808",
                "20.125", "-3.75", "0.1", "00.5", "-0.0", "123456789012345.0", "1e5", "-1.5E-3",
                "1234567890123456.0", "1.7976931348623157e308", "4.9e-324", "1e-400",
        };
        for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
                char lst[64];
                hyb_obj *alone = NULL, *in = NULL;
                hyb_error e;

                snprintf(lst, sizeof lst, "[%s]", nums[i]);
                ck_assert_msg(hyb_obj_parse(nums[i], strlen(nums[i]), &alone, &e) == 0, "%s: %s",
                              nums[i], e.message);
                ck_assert_int_eq(hyb_obj_parse(lst, strlen(lst), &in, &e), 0);
                ck_assert_msg(hyb_obj_equal(alone, hyb_obj_get_at(in, 0)), "%s", nums[i]);
                ck_assert_int_eq(hyb_obj_get_kind(alone), hyb_obj_get_kind(hyb_obj_get_at(in, 0)));
                if (hyb_obj_get_kind(alone) == HYB_OBJ_REAL) {
                        double a = hyb_obj_get_real(alone), b = hyb_obj_get_real(hyb_obj_get_at(in, 0));
                        ck_assert_msg(memcmp(&a, &b, sizeof a) == 0, "%s: %a and %a", nums[i], a, b);
                }
                hyb_obj_unref(alone);
                hyb_obj_unref(in);
        }
        /* what follows a number is read as before */
        hyb_obj *o = NULL;
        hyb_error e;
        ck_assert_int_eq(hyb_obj_parse("12@/id/x", 8, &o, &e), 0);
        ck_assert_ptr_nonnull(hyb_obj_get_value_id(o));
        ck_assert_int_eq(hyb_obj_get_int(o), 12);
        hyb_obj_unref(o);
        ck_assert_int_eq(hyb_obj_parse("1.5 ", 4, &o, &e), 0);
        ck_assert(hyb_obj_get_real(o) == 1.5);
        hyb_obj_unref(o);
        o = NULL;
        ck_assert_int_lt(hyb_obj_parse("1 2", 3, &o, &e), 0);
        ck_assert_ptr_null(o);
        ck_assert_int_lt(hyb_obj_parse("1.", 2, &o, &e), 0);
        ck_assert_ptr_null(o);
        /* out of range: refused with its position, alone or not */
        ck_assert_int_eq(hyb_obj_parse("1e999", 5, &o, &e), HYB_E_OVERFLOW);
        ck_assert_ptr_null(o);
        ck_assert_ptr_nonnull(strstr(e.message, "line 1, column 1"));
        ck_assert_int_eq(hyb_obj_parse("99999999999999999999", 20, &o, &e), HYB_E_OVERFLOW);
        ck_assert_ptr_nonnull(strstr(e.message, "does not fit in 64 bits"));
}
END_TEST

START_TEST(test_refcounts)
{
        hyb_obj *i = NULL, *l = NULL, *s = NULL;
        const char *str;

        /* singletons: ref/unref are harmless, unref returns NULL */
        ck_assert_ptr_eq(hyb_obj_ref(hyb_obj_noobj()), hyb_obj_noobj());
        for (int k = 0; k < 10; k++)
                ck_assert_ptr_null(hyb_obj_unref(hyb_obj_noobj()));
        ck_assert_ptr_null(hyb_obj_unref(hyb_obj_bool(true)));
        ck_assert(hyb_obj_get_bool(hyb_obj_bool(true)));
        ck_assert(!hyb_obj_get_bool(hyb_obj_bool(false)));
        ck_assert(hyb_obj_is_noobj(hyb_obj_noobj()));
        ck_assert_ptr_null(hyb_obj_unref(NULL));
        ck_assert_ptr_null(hyb_obj_ref(NULL));

        /* a lst keeps its items alive */
        ck_assert_int_eq(hyb_obj_new_int(123456789, &i), 0);
        ck_assert_int_eq(hyb_obj_new_str("abc", (size_t)-1, &s), 0);
        hyb_obj *items[] = { i, s, hyb_obj_noobj() };
        ck_assert_int_eq(hyb_obj_new_lst(items, 3, &l), 0);
        ck_assert_uint_eq(atomic_load(&i->n_ref), 2);
        hyb_obj_ref(i);
        ck_assert_uint_eq(atomic_load(&i->n_ref), 3);
        hyb_obj_unref(i);
        hyb_obj_unref(i);
        hyb_obj_unref(s);
        ck_assert_int_eq(hyb_obj_get_int(hyb_obj_get_at(l, 0)), 123456789);
        str = hyb_obj_get_str(hyb_obj_get_at(l, 1), NULL);
        ck_assert_str_eq(str, "abc");
        ck_assert(hyb_obj_is_noobj(hyb_obj_get_at(l, 2)));
        ck_assert_ptr_null(hyb_obj_get_at(l, 3));
        hyb_obj_unref(l);

        /* small ints are shared and need no unref */
        ck_assert_int_eq(hyb_obj_new_int(7, &i), 0);
        ck_assert_int_eq(hyb_obj_new_int(7, &s), 0);
        ck_assert_ptr_eq(i, s);
        hyb_obj_unref(i);
        hyb_obj_unref(i);
        ck_assert_int_eq(hyb_obj_get_int(s), 7);
}
END_TEST

static void *hammer(void *ud)
{
        hyb_obj *shared = ud;

        for (int k = 0; k < 200000; k++) {
                hyb_obj *items[] = { shared };
                hyb_obj *l = NULL;

                hyb_obj_ref(shared);
                if (k % 16 == 0 && hyb_obj_new_lst(items, 1, &l) == 0)
                        hyb_obj_unref(l);
                hyb_obj_unref(shared);
        }
        return NULL;
}

START_TEST(test_refcount_threads)
{
        hyb_obj *shared = P("[a=>'shared',b=>[1,2,3]]");
        pthread_t t1, t2;

        ck_assert_int_eq(pthread_create(&t1, NULL, hammer, shared), 0);
        ck_assert_int_eq(pthread_create(&t2, NULL, hammer, shared), 0);
        pthread_join(t1, NULL);
        pthread_join(t2, NULL);
        ck_assert_uint_eq(atomic_load(&shared->n_ref), 1);
        ck_assert_uint_eq(hyb_obj_get_len(shared), 2);
        hyb_obj_unref(shared);
}
END_TEST

START_TEST(test_rec_order_and_keys)
{
        hyb_obj *k[3], *v[3], *rec = NULL, *big = NULL, *lookup;

        k[0] = P("b");
        k[1] = P("a");
        k[2] = P("b");
        v[0] = P("1");
        v[1] = P("2");
        v[2] = P("3");
        ck_assert_int_eq(hyb_obj_new_rec(k, v, 3, &rec), 0);
        /* repeated key: first position, later value */
        ck_assert_uint_eq(hyb_obj_get_len(rec), 2);
        ck_assert(hyb_obj_equal(hyb_obj_get_rec_key(rec, 0), k[0]));
        ck_assert_int_eq(hyb_obj_get_int(hyb_obj_get_rec_value(rec, 0)), 3);
        ck_assert(hyb_obj_equal(hyb_obj_get_rec_key(rec, 1), k[1]));
        ck_assert_int_eq(hyb_obj_get_int(hyb_obj_get_field(rec, k[1])), 2);
        ck_assert_ptr_null(hyb_obj_get_field(rec, v[0]));
        ck_assert_ptr_null(hyb_obj_get_rec_key(rec, 2));
        for (int i = 0; i < 3; i++) {
                hyb_obj_unref(k[i]);
                hyb_obj_unref(v[i]);
        }
        hyb_obj_unref(rec);

        /* a large rec of mixed keys: indexed lookup, insertion order kept */
        ck_assert_int_eq(obj_rec_builder(0, &big), 0);
        for (int i = 0; i < 300; i++) {
                char t[32];
                hyb_obj *key, *val = NULL;

                snprintf(t, sizeof(t), i % 3 == 0 ? "k%d" : i % 3 == 1 ? "'s%d'" : "%d", i);
                key = P(t);
                ck_assert_int_eq(hyb_obj_new_int(i, &val), 0);
                ck_assert_int_eq(obj_rec_set(big, key, val), 0);
        }
        ck_assert_int_eq(obj_rec_set(big, P("k3"), P("-1")), 0); /* replace, keep position */
        ck_assert_uint_eq(hyb_obj_get_len(big), 300);
        for (int i = 0; i < 300; i++) {
                char t[32];
                snprintf(t, sizeof(t), i % 3 == 0 ? "k%d" : i % 3 == 1 ? "'s%d'" : "%d", i);
                lookup = P(t);
                ck_assert(hyb_obj_equal(hyb_obj_get_rec_key(big, i), lookup));
                ck_assert_int_eq(hyb_obj_get_int(hyb_obj_get_field(big, lookup)), i == 3 ? -1 : i);
                hyb_obj_unref(lookup);
        }
        lookup = P("k1");
        ck_assert_ptr_null(hyb_obj_get_field(big, lookup));
        hyb_obj_unref(lookup);
        hyb_obj_unref(big);
}
END_TEST

START_TEST(test_equal_order_hash)
{
        static const char *const sorted[] = {
                "noobj", "false", "true", "-5", "0", "7", "nat[7]", "-inf", "-0.5", "1.0", "inf",
                "nan", "''", "'a'", "'ab'", "'b'", "<>", "a", "a/b", "b", "[]", "[1]", "[1,2]",
                "[2]", "[=>]", "[a=>1]", "[a=>1,b=>2]", "[a=>2]", "{}", "{1}",
        };
        size_t n = sizeof(sorted) / sizeof(sorted[0]);
        hyb_obj *o[sizeof(sorted) / sizeof(sorted[0])];
        hyb_obj *a, *b;

        for (size_t i = 0; i < n; i++)
                o[i] = P(sorted[i]);
        for (size_t i = 0; i < n; i++)
                for (size_t j = 0; j < n; j++) {
                        int c = hyb_obj_compare(o[i], o[j]);
                        int want = (i > j) - (i < j);
                        ck_assert_msg(c == want, "compare(%s, %s) = %d, want %d", sorted[i],
                                      sorted[j], c, want);
                        ck_assert(hyb_obj_equal(o[i], o[j]) == (i == j));
                }
        for (size_t i = 0; i < n; i++)
                hyb_obj_unref(o[i]);

        /* 1 and 1.0 are different kinds */
        a = P("1");
        b = P("1.0");
        ck_assert(!hyb_obj_equal(a, b));
        ck_assert_int_lt(hyb_obj_compare(a, b), 0);
        hyb_obj_unref(a);
        hyb_obj_unref(b);

        /* pairs in another order: equal recs, equal hashes */
        a = P("[a=>1,b=>[c=>2,d=>3]]");
        b = P("[b=>[d=>3,c=>2],a=>1]");
        ck_assert(hyb_obj_equal(a, b));
        ck_assert_int_eq(hyb_obj_compare(a, b), 0);
        ck_assert(hyb_obj_hash(a) == hyb_obj_hash(b));
        hyb_obj_unref(a);
        hyb_obj_unref(b);

        /* value ids are ignored, type ids are not */
        a = P("[1,2]@x");
        b = P("[1,2]");
        ck_assert(hyb_obj_equal(a, b));
        ck_assert(hyb_obj_hash(a) == hyb_obj_hash(b));
        hyb_obj_unref(a);
        hyb_obj_unref(b);
        a = P("nat[5]");
        b = P("5");
        ck_assert(!hyb_obj_equal(a, b));
        ck_assert_int_gt(hyb_obj_compare(a, b), 0);
        hyb_obj_unref(a);
        hyb_obj_unref(b);

        /* a query makes another value; -0.0 and 0.0, nan and nan are equal */
        a = P("a?int");
        b = P("a");
        ck_assert(!hyb_obj_equal(a, b));
        hyb_obj_unref(a);
        hyb_obj_unref(b);
        a = P("-0.0");
        b = P("0.0");
        ck_assert(hyb_obj_equal(a, b) && hyb_obj_hash(a) == hyb_obj_hash(b));
        hyb_obj_unref(a);
        hyb_obj_unref(b);
        a = P("nan");
        b = P("nan");
        ck_assert(hyb_obj_equal(a, b) && hyb_obj_hash(a) == hyb_obj_hash(b));
        hyb_obj_unref(a);
        hyb_obj_unref(b);

        /* the index-based rec equality agrees with the small one */
        a = P("[a=>1,b=>2,c=>3,d=>4,e=>5,f=>6,g=>7,h=>8,i=>9,j=>10]");
        b = P("[j=>10,i=>9,h=>8,g=>7,f=>6,e=>5,d=>4,c=>3,b=>2,a=>1]");
        ck_assert(hyb_obj_equal(a, b) && hyb_obj_hash(a) == hyb_obj_hash(b));
        ck_assert_int_eq(hyb_obj_compare(a, b), 0);
        hyb_obj_unref(a);
        hyb_obj_unref(b);
}
END_TEST

START_TEST(test_constructors_getters)
{
        hyb_obj *o = NULL, *t = NULL;
        hyb_furi *f = NULL;
        size_t len;

        ck_assert_int_eq(hyb_obj_new_real(2.5, &o), 0);
        ck_assert_int_eq(hyb_obj_get_kind(o), HYB_OBJ_REAL);
        ck_assert(hyb_obj_get_real(o) == 2.5);
        /* wrong-kind access gives zero values */
        ck_assert_int_eq(hyb_obj_get_int(o), 0);
        ck_assert(!hyb_obj_get_bool(o));
        ck_assert_ptr_null(hyb_obj_get_str(o, &len));
        ck_assert_uint_eq(len, 0);
        ck_assert_ptr_null(hyb_obj_get_uri(o));
        ck_assert_uint_eq(hyb_obj_get_len(o), 0);
        ck_assert_ptr_null(hyb_obj_get_rec_key(o, 0));
        hyb_obj_unref(o);

        ck_assert_int_eq(hyb_obj_new_str("a\0b", 3, &o), 0);
        ck_assert_int_eq(memcmp(hyb_obj_get_str(o, &len), "a\0b", 4), 0);
        ck_assert_uint_eq(len, 3);
        hyb_obj_unref(o);

        ck_assert_int_eq(hyb_obj_new_uri_str("/a/b", &o, NULL), 0);
        ck_assert_str_eq(hyb_furi_get_str(hyb_obj_get_uri(o)), "/a/b");
        hyb_obj_unref(o);
        ck_assert_int_eq(hyb_obj_new_uri_str("a//b", &o, NULL), HYB_E_PARSE);

        /* with_type: bare names under /type/, a base type of the kind is dropped */
        ck_assert_int_eq(hyb_furi_parse("nat", (size_t)-1, NULL, &f, NULL), 0);
        o = P("5");
        ck_assert_int_eq(hyb_obj_with_type(o, f, &t), 0);
        ck_assert_str_eq(hyb_furi_get_str(hyb_obj_get_type_id(t)), "/type/nat");
        ck_assert_ptr_null(hyb_obj_get_type_id(o));
        hyb_furi_unref(f);
        ck_assert_int_eq(hyb_obj_with_type(t, NULL, &o), 0);
        ck_assert_ptr_null(hyb_obj_get_type_id(o));
        hyb_obj_unref(o);
        hyb_obj_unref(t);
        ck_assert_int_eq(hyb_furi_parse("/type/int", (size_t)-1, NULL, &f, NULL), 0);
        o = P("6");
        ck_assert_int_eq(hyb_obj_with_type(o, f, &t), 0);
        ck_assert_ptr_null(hyb_obj_get_type_id(t));
        hyb_obj_unref(t);
        ck_assert_int_eq(hyb_obj_with_id(o, f, &t), 0);
        ck_assert_str_eq(hyb_furi_get_str(hyb_obj_get_value_id(t)), "/type/int");
        ck_assert_ptr_null(hyb_obj_get_value_id(o));
        hyb_obj_unref(t);
        hyb_obj_unref(o);
        ck_assert_int_eq(hyb_obj_with_type(hyb_obj_noobj(), f, &t), -EINVAL);
        ck_assert_int_eq(hyb_obj_with_id(hyb_obj_noobj(), f, &t), -EINVAL);
        /* tagging a singleton copies it */
        ck_assert_int_eq(hyb_obj_with_id(hyb_obj_bool(true), f, &t), 0);
        ck_assert(hyb_obj_get_bool(t) && hyb_obj_get_value_id(t));
        ck_assert_ptr_null(hyb_obj_get_value_id(hyb_obj_bool(true)));
        hyb_obj_unref(t);
        hyb_furi_unref(f);

        ck_assert_str_eq(hyb_obj_kind_name(HYB_OBJ_NOOBJ), "noobj");
        ck_assert_str_eq(hyb_obj_kind_name(HYB_OBJ_INT), "int");
        ck_assert_str_eq(hyb_obj_kind_name(HYB_OBJ_OBJS), "objs");
        ck_assert_str_eq(hyb_obj_kind_name(HYB_OBJ_CODE), "code");

        ck_assert_int_eq(hyb_obj_new_lst(NULL, 1, &o), -EINVAL);
        ck_assert_int_eq(hyb_obj_new_int(1, NULL), -EINVAL);
        ck_assert_int_eq(hyb_obj_format(NULL, 0, (char **)&o), 0);
        ck_assert_str_eq((char *)o, "noobj");
        free(o);
}
END_TEST

static char *nest(const char *open, const char *close, int n)
{
        size_t lo = strlen(open), lc = strlen(close);
        char *s = malloc(n * (lo + lc) + 2), *w = s;

        for (int i = 0; i < n; i++, w += lo)
                memcpy(w, open, lo);
        *w++ = '1';
        for (int i = 0; i < n; i++, w += lc)
                memcpy(w, close, lc);
        *w = '\0';
        return s;
}

START_TEST(test_depth)
{
        hyb_obj *o = NULL;
        hyb_error e;
        char *s;

        s = nest("[", "]", HYB_OBJ_MAX_DEPTH);
        ck_assert_int_eq(hyb_obj_parse(s, (size_t)-1, &o, &e), 0);
        hyb_obj_unref(o);
        free(s);
        s = nest("[", "]", HYB_OBJ_MAX_DEPTH + 1);
        ck_assert_int_eq(hyb_obj_parse(s, (size_t)-1, &o, &e), HYB_E_DEPTH);
        ck_assert_int_eq(e.offset, HYB_OBJ_MAX_DEPTH);
        free(s);
        s = nest("{", "}", HYB_OBJ_MAX_DEPTH + 1);
        ck_assert_int_eq(hyb_obj_parse(s, (size_t)-1, &o, &e), HYB_E_DEPTH);
        free(s);
        s = nest("[", "]", 100000);
        ck_assert_int_eq(hyb_obj_parse(s, (size_t)-1, &o, &e), HYB_E_DEPTH);
        free(s);

        s = nest("[", "]", HYB_OBJ_MAX_DEPTH);
        ck_assert_int_eq(hyb_obj_from_json(s, (size_t)-1, &o, &e), 0);
        hyb_obj_unref(o);
        free(s);
        s = nest("[", "]", HYB_OBJ_MAX_DEPTH + 1);
        ck_assert_int_eq(hyb_obj_from_json(s, (size_t)-1, &o, &e), HYB_E_DEPTH);
        free(s);
        s = nest("{\"a\":", "}", HYB_OBJ_MAX_DEPTH + 1);
        ck_assert_int_eq(hyb_obj_from_json(s, (size_t)-1, &o, &e), HYB_E_DEPTH);
        free(s);
        s = nest("[", "]", 100000);
        ck_assert_int_eq(hyb_obj_from_json(s, (size_t)-1, &o, &e), HYB_E_DEPTH);
        free(s);
}
END_TEST

START_TEST(test_error_position)
{
        hyb_obj *o = NULL;
        hyb_error e;

        ck_assert_int_eq(hyb_obj_parse("\n\n  [1,,2]", (size_t)-1, &o, &e), HYB_E_PARSE);
        ck_assert_int_eq(e.offset, 7);
        ck_assert_int_eq(e.line, 3);
        ck_assert_int_eq(e.column, 6);
        ck_assert(strstr(e.message, "','") && strstr(e.message, "line 3, column 6"));

        ck_assert_int_eq(hyb_obj_parse("[1,\n 'open", (size_t)-1, &o, &e), HYB_E_PARSE);
        ck_assert_int_eq(e.line, 2);
        ck_assert_int_eq(e.column, 2);
        ck_assert(strstr(e.message, "unterminated str"));

        /* an explicit length: the NUL inside a str is a byte, outside it an error */
        ck_assert_int_eq(hyb_obj_parse("'a\0b'", 5, &o, &e), 0);
        ck_assert_uint_eq(hyb_obj_get_len(o), 0);
        ck_assert_int_eq(memcmp(hyb_obj_get_str(o, NULL), "a\0b", 3), 0);
        hyb_obj_unref(o);
        ck_assert_int_eq(hyb_obj_parse("1\0", 2, &o, &e), HYB_E_PARSE);
        ck_assert_int_eq(e.offset, 1);
        ck_assert_int_eq(hyb_obj_parse("12", 1, &o, &e), 0);
        ck_assert_int_eq(hyb_obj_get_int(o), 1);
        hyb_obj_unref(o);

        /* JSON: invalid UTF-8 and syntax errors carry a position */
        ck_assert_int_eq(hyb_obj_from_json("\"\xff\"", (size_t)-1, &o, &e), HYB_E_PARSE);
        ck_assert_int_eq(hyb_obj_from_json("[1,\n  x]", (size_t)-1, &o, &e), HYB_E_PARSE);
        ck_assert_int_eq(e.line, 2);
        ck_assert_int_ge(e.offset, 5);
}
END_TEST

START_TEST(test_json_nul_and_precision)
{
        hyb_obj *o = NULL;
        char *s = NULL;

        ck_assert_int_eq(hyb_obj_from_json("\"a\\u0000b\"", (size_t)-1, &o, NULL), 0);
        ck_assert_int_eq(hyb_obj_to_json(o, &s, NULL), 0);
        ck_assert_str_eq(s, "\"a\\u0000b\"");
        free(s);
        hyb_obj_unref(o);
        /* every real of a tree round-trips */
        o = P("[0.1,[a=>0.2],{1e-300},2.0,1.7976931348623157e308]");
        ck_assert_int_eq(hyb_obj_to_json(o, &s, NULL), 0);
        {
                hyb_obj *back = NULL;
                ck_assert_int_eq(hyb_obj_from_json(s, (size_t)-1, &back, NULL), 0);
                ck_assert(hyb_obj_equal(o, back));
                hyb_obj_unref(back);
        }
        free(s);
        hyb_obj_unref(o);
}
END_TEST

/* The formatter that shortest_e replaced: the fewest %g digits that strtod reads back, tried
 * one by one, then Python's repr layout.  The new one must print exactly this text. */
static int old_shortest_precision(double r)
{
        char tmp[40];

        for (int p = 1; p < 17; p++) {
                snprintf(tmp, sizeof(tmp), "%.*g", p, r);
                if (strtod(tmp, NULL) == r)
                        return p;
        }
        return 17;
}

static void old_format_real_exact(double r, char *out, size_t size)
{
        char tmp[40];
        int p = old_shortest_precision(r), x;

        snprintf(tmp, sizeof(tmp), "%.*e", p - 1, r);
        x = atoi(strchr(tmp, 'e') + 1);
        if (x >= -4 && x < 16)
                snprintf(tmp, sizeof(tmp), "%.*f", p - 1 - x > 0 ? p - 1 - x : 0, r);
        snprintf(out, size, "%s%s", tmp, strpbrk(tmp, ".e") ? "" : ".0");
}

static int old_json_real_precision(double r)
{
        int p = old_shortest_precision(r);

        if (fabs(r) >= 1.0 && fabs(r) < 1e15) {
                int x = (int)floor(log10(fabs(r))) + 1;
                if (x > p)
                        p = x;
        }
        return p;
}

static uint64_t xorshift(uint64_t *s)
{
        *s ^= *s << 13;
        *s ^= *s >> 7;
        *s ^= *s << 17;
        return *s;
}

/* A random finite double of one of five kinds: any bit pattern (subnormals included), a
 * decimal of 1..17 digits at a random exponent (short forms, the common case), an integer,
 * a neighbour (one ulp off) of such a decimal, and a binary fraction m / 2^k. */
static double random_real(uint64_t *rng, int kind)
{
        uint64_t x = xorshift(rng);
        char text[64];
        double r;

        switch (kind) {
        case 0:
                do {
                        x = xorshift(rng);
                        memcpy(&r, &x, sizeof(r));
                } while (!isfinite(r));
                return r;
        case 1:
        case 3: {
                int digits = 1 + (int)(x % 17), exp10 = (int)((x >> 8) % 640) - 330;
                uint64_t m = xorshift(rng) % 100000000000000000ULL;
                snprintf(text, sizeof(text), "%s0.%0*" PRIu64 "e%d", x >> 63 ? "-" : "", digits,
                         m % (uint64_t)pow(10, digits), exp10);
                r = strtod(text, NULL);
                if (kind == 3 && r != 0 && isfinite(r))
                        r = nextafter(r, x & 2 ? INFINITY : -INFINITY);
                return isfinite(r) ? r : 1.5;
        }
        case 2:
                return (double)(int64_t)(x >> (x % 64));
        default:
                /* a binary fraction: m / 2^k, the exact form's integer-only path and its edges */
                return ldexp((double)(int64_t)(x >> (11 + (x >> 58) % 52)), -(int)((x >> 8) % 12));
        }
}

/* EXACT text of a real equals the old digit-by-digit formatter's, reads back to the same
 * bits, and the JSON precision is the old one (and JSON reads back to the same bits). */
START_TEST(test_real_format_round_trip)
{
        uint64_t rng = 0x9e3779b97f4a7c15ULL;
        double fixed[] = { 0.0, -0.0, 0.1, 0.1 + 0.2, 1.0, 20.125, 1e15, 1e16, 9007199254740993.0,
                           DBL_MAX, DBL_MIN, -DBL_MIN, DBL_TRUE_MIN, 5e-324, 2.2250738585072009e-308,
                           1e-4, 9.999999999999999e-5, 123456789012345678.0, 1e300, 1.5e-7,
                           20.125, -3.75, 0.001, 0.00390625, 999999999999999.0, 1e15 - 0.5,
                           562949953421311.75, 0.0009765625, 1.00390625, -0.5 };
        size_t n_fixed = sizeof(fixed) / sizeof(fixed[0]);

        for (size_t i = 0; i < n_fixed + 40000; i++) {
                double r = i < n_fixed ? fixed[i] : random_real(&rng, (int)(i % 5)), back;
                char want[64], *got = NULL, *json = NULL;
                hyb_obj *o = NULL, *p = NULL, *q = NULL;
                hyb_error e;

                ck_assert_int_eq(hyb_obj_new_real(r, &o), 0);
                ck_assert_int_eq(hyb_obj_format(o, HYB_FORMAT_EXACT, &got), 0);
                old_format_real_exact(r, want, sizeof(want));
                ck_assert_msg(strcmp(got, want) == 0, "%a: formatted %s, the old formatter %s",
                              r, got, want);
                ck_assert_int_eq(obj_json_real_precision(o), old_json_real_precision(r));
                ck_assert_int_eq(hyb_obj_parse(got, strlen(got), &p, &e), 0);
                back = hyb_obj_get_real(p);
                ck_assert_msg(memcmp(&back, &r, sizeof(r)) == 0, "%a: %s reads back as %a", r,
                              got, back);
                ck_assert_int_eq(hyb_obj_to_json(o, &json, &e), 0);
                ck_assert_int_eq(hyb_obj_from_json(json, strlen(json), &q, &e), 0);
                back = hyb_obj_get_real(q);
                ck_assert_msg(back == r, "%a: JSON %s reads back as %a", r, json, back);
                free(got);
                free(json);
                hyb_obj_unref(o);
                hyb_obj_unref(p);
                hyb_obj_unref(q);
        }
}
END_TEST

/* Reals written as short decimals (the parser's path without strtod) read as strtod reads
 * them, bit for bit: random texts `-?I.F` of 2 to 17 digits, leading zeros included. */
START_TEST(test_real_parse_short)
{
        uint64_t rng = 0x2545f4914f6cdd1dULL;

        for (int i = 0; i < 40000; i++) {
                uint64_t x = xorshift(&rng), y = xorshift(&rng);
                int digits = 2 + (int)(x % 16), before = 1 + (int)((x >> 8) % (uint64_t)(digits - 1));
                char text[64];
                size_t len = 0;
                hyb_obj *o = NULL;
                hyb_error e;
                double want, got;

                if (x >> 63)
                        text[len++] = '-';
                for (int d = 0; d < digits; d++) {
                        if (d == before)
                                text[len++] = '.';
                        /* mostly random digits, sometimes runs of 9s and 0s (carries) */
                        text[len++] = (char)('0' + ((x >> 20) & 1 ? (y >> (d * 3)) % 10
                                                                 : (y >> 62) % 2 ? 9 : 0));
                        if ((y >> (d * 3)) % 7 == 0)
                                y = xorshift(&rng);
                }
                text[len] = '\0';
                want = strtod(text, NULL);
                ck_assert_msg(hyb_obj_parse(text, len, &o, &e) == 0, "%s: %s", text, e.message);
                ck_assert_int_eq(hyb_obj_get_kind(o), HYB_OBJ_REAL);
                got = hyb_obj_get_real(o);
                ck_assert_msg(memcmp(&got, &want, sizeof(got)) == 0, "%s read as %a, strtod %a",
                              text, got, want);
                hyb_obj_unref(o);
        }
}
END_TEST

/* Every INT text of 1..20 digits (leading zeros, a sign, the 64-bit bounds and past them)
 * reads as strtoll reads it, or is refused HYB_E_OVERFLOW where strtoll says ERANGE: the
 * lexer reads up to 18 digits itself and hands longer ones to strtoll. */
START_TEST(test_int_parse)
{
        static const char *const fixed[] = {
                "0", "-0", "007", "-007", "999999999999999999", "-999999999999999999",
                "1000000000000000000", "9223372036854775807", "-9223372036854775808",
                "9223372036854775808", "-9223372036854775809", "18446744073709551616",
                "000000000000000000001", "99999999999999999999",
        };
        size_t n_fixed = sizeof fixed / sizeof fixed[0];
        uint64_t rng = 0x9e3779b97f4a7c15ULL;

        for (size_t i = 0; i < n_fixed + 40000; i++) {
                char text[64];
                size_t len = 0;
                hyb_obj *o = NULL;
                hyb_error e;
                long long want;
                int r;

                if (i < n_fixed) {
                        len = strlen(fixed[i]);
                        memcpy(text, fixed[i], len + 1);
                } else {
                        uint64_t x = xorshift(&rng), y = xorshift(&rng);
                        int digits = 1 + (int)(x % 20);

                        if (x >> 63)
                                text[len++] = '-';
                        for (int d = 0; d < digits; d++) {
                                text[len++] = (char)('0' + y % 10);
                                y = d % 8 == 7 ? xorshift(&rng) : y / 10;
                        }
                        text[len] = '\0';
                }
                errno = 0;
                want = strtoll(text, NULL, 10);
                r = hyb_obj_parse(text, len, &o, &e);
                if (errno == ERANGE) {
                        ck_assert_msg(r == HYB_E_OVERFLOW, "%s: %d, want HYB_E_OVERFLOW", text, r);
                        continue;
                }
                ck_assert_msg(r == 0, "%s: %s", text, e.message);
                ck_assert_int_eq(hyb_obj_get_kind(o), HYB_OBJ_INT);
                ck_assert_msg(hyb_obj_get_int(o) == want, "%s read as %lld, strtoll %lld", text,
                              (long long)hyb_obj_get_int(o), want);
                hyb_obj_unref(o);
        }
}
END_TEST

/* Reals with an exponent, or longer than the lexer's own path takes (15 digits), and the
 * edge texts: each reads as strtod reads the whole text (the path they took before the
 * lexer read short ones itself), bit for bit (-0.0 included); one strtod finds out of range
 * (an infinity) is refused HYB_E_OVERFLOW, one that underflows is read as strtod reads it. */
START_TEST(test_real_parse_exp)
{
        static const char *const fixed[] = {
                "-0.0", "0.0", "-0.000", "00.5", "-00.5", "1.0", "0.1", "123456789012345.0",
                "1234567890123456.0", "0.1234567890123456789", "9007199254740993.0",
                "1e0", "1E5", "1e+5", "-1e-5", "1.5e3", "2.5E-3", "1e308", "1.7976931348623157e308",
                "1.8e308", "-1e400", "1e-400", "4.9e-324", "2.2250738585072014e-308",
                "0e999999", "1e-999999", "123456789012345678901234567890.5",
        };
        size_t n_fixed = sizeof fixed / sizeof fixed[0];
        uint64_t rng = 0x853c49e6748fea9bULL;

        for (size_t i = 0; i < n_fixed + 40000; i++) {
                char text[80];
                size_t len = 0;
                hyb_obj *o = NULL;
                hyb_error e;
                double want, got;
                int r;

                if (i < n_fixed) {
                        len = strlen(fixed[i]);
                        memcpy(text, fixed[i], len + 1);
                } else {
                        uint64_t x = xorshift(&rng), y = xorshift(&rng);
                        int digits = 1 + (int)(x % 24), before = 1 + (int)((x >> 8) % 24);

                        if (x >> 63)
                                text[len++] = '-';
                        for (int d = 0; d < digits; d++) {
                                if (d == before)
                                        text[len++] = '.';
                                text[len++] = (char)('0' + (y >> (d % 16 * 4)) % 10);
                        }
                        if ((x >> 40) & 1) /* an exponent, -400..400 */
                                len += (size_t)snprintf(text + len, sizeof text - len, "%c%d",
                                                        (x >> 41) & 1 ? 'e' : 'E',
                                                        (int)((x >> 42) % 801) - 400);
                        else if (digits <= before) /* no fraction and no exponent: an INT */
                                continue;
                        text[len] = '\0';
                }
                errno = 0;
                want = strtod(text, NULL);
                r = hyb_obj_parse(text, len, &o, &e);
                if (errno == ERANGE && isinf(want)) {
                        ck_assert_msg(r == HYB_E_OVERFLOW, "%s: %d, want HYB_E_OVERFLOW", text, r);
                        continue;
                }
                ck_assert_msg(r == 0, "%s: %s", text, e.message);
                ck_assert_msg(hyb_obj_get_kind(o) == HYB_OBJ_REAL, "%s: kind %d", text,
                              (int)hyb_obj_get_kind(o));
                got = hyb_obj_get_real(o);
                ck_assert_msg(memcmp(&got, &want, sizeof(got)) == 0, "%s read as %a, strtod %a",
                              text, got, want);
                hyb_obj_unref(o);
        }
        /* a fraction needs a digit on both sides of the dot, as before */
        static const char *const bad[] = { "1.", ".5", "-.5", "-", "1.e5", "1e" };
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
                hyb_obj *o = NULL;
                hyb_error e;

                ck_assert_msg(hyb_obj_parse(bad[i], strlen(bad[i]), &o, &e) < 0, "%s taken", bad[i]);
                ck_assert_ptr_null(o);
        }
}
END_TEST

Suite *obj_suite(void)
{
        Suite *s = suite_create("obj");
        TCase *tc = tcase_create("obj");

        tcase_add_test(tc, test_text_file);
        tcase_add_test(tc, test_json_file);
        tcase_add_test(tc, test_real_format_round_trip);
        tcase_add_test(tc, test_real_parse_short);
        tcase_add_test(tc, test_int_parse);
        tcase_add_test(tc, test_real_parse_exp);
        tcase_add_test(tc, test_number_alone);
        tcase_add_test(tc, test_refcounts);
        tcase_add_test(tc, test_refcount_threads);
        tcase_add_test(tc, test_rec_order_and_keys);
        tcase_add_test(tc, test_equal_order_hash);
        tcase_add_test(tc, test_constructors_getters);
        tcase_add_test(tc, test_depth);
        tcase_add_test(tc, test_error_position);
        tcase_add_test(tc, test_json_nul_and_precision);
        tcase_set_timeout(tc, 60);
        suite_add_tcase(s, tc);
        return s;
}
