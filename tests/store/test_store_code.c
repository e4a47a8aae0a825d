/* SPDX-License-Identifier: MIT */
/*
 * A code obj written to a file store reads back as the same code in any later
 * opening of the file: a VM stores code (quoted, lifted, an instruction
 * definition, code inside polys), everything is closed, and a new store and
 * a new VM over the same file apply it.  The expected results are the ones the
 * language gives for that code (doc/mmadt.md), not recorded output.  A stored
 * text that is not code still fails: at open when it does not even close
 * (HYB_E_CORRUPT), at the first use when it does not compile (HYB_E_PARSE).
 */
#include <check.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hybrid/mmadt.h"
#include "hybrid/store.h"
#include "store/store-internal.h"
#include "suites.h"
#include "testutil.h"

/* eval gives the stream of a program's results: one result stands for itself */
static hyb_obj *one(hyb_obj *res)
{
        hyb_obj *o;

        if (hyb_obj_get_kind(res) != HYB_OBJ_OBJS || hyb_obj_get_len(res) != 1)
                return res;
        o = hyb_obj_ref(hyb_obj_get_at(res, 0));
        hyb_obj_unref(res);
        return o;
}

typedef struct vm_on_file {
        hyb_store *st;
        hyb_backend *b;
        hyb_scope *sc;
        hyb_mmadt *vm;
} vm_on_file;

static int vof_open(vm_on_file *v, const char *path, hyb_error *e)
{
        int r;

        *v = (vm_on_file){ 0 };
        r = hyb_store_open(path, NULL, &v->st, e);
        if (r < 0)
                return r;
        ck_assert_int_eq(hyb_backend_new_store(v->st, &v->b), 0);
        ck_assert_int_eq(hyb_scope_new(v->b, NULL, "codetest", &v->sc), 0);
        ck_assert_int_eq(hyb_mmadt_new(v->sc, "codetest", NULL, &v->vm), 0);
        return 0;
}

static void vof_close(vm_on_file *v)
{
        hyb_mmadt_unref(v->vm);
        hyb_scope_unref(v->sc);
        hyb_backend_unref(v->b);
        hyb_store_unref(v->st);
}

/* The REPL text of the result of running prog (a stream prints as {a,b}). */
static char *run(vm_on_file *v, const char *prog)
{
        hyb_obj *res = NULL;
        hyb_error e = { 0 };
        char *txt = NULL;
        int r = hyb_mmadt_eval(v->vm, prog, (size_t)-1, NULL, &res, &e);

        ck_assert_msg(r == 0, "%s: %s %s", prog, hyb_err_name(r), e.message);
        res = one(res);
        ck_assert_int_eq(hyb_obj_format(res, HYB_FORMAT_REPL, &txt), 0);
        hyb_obj_unref(res);
        return txt;
}

static void runs_as(vm_on_file *v, const char *prog, const char *want)
{
        char *got = run(v, prog);

        ck_assert_msg(strcmp(got, want) == 0, "%s: got %s, want %s", prog, got, want);
        hyb_free(got);
}

static char *join(const char *dir, const char *name)
{
        char *p = NULL;

        ck_assert_int_ge(asprintf(&p, "%s/%s", dir, name), 0);
        return p;
}

static const char *const stores[] = {
        "/c/f -> |plus(1)",
        "/c/zz -> |(plus(5).mult(2))",
        "/c/band -> |band?int{?}<=int(min=>else(2),max=>else(8))[is(gte(*min)).is(lte(*max))]",
        "/c/t -> thread[[loop=>^(plus(1))]]",
        "/c/g -> [a=>|plus(2),b=>3]",
        "/c/person -> |[name?str=>_, age?int=>else(29)]",
        "/c/s -> |plus(' )(<x> \\' ')",
        "/c/u -> |plus(<a(b)>)",
        "/c/nat -> |is(gt(0))",
        "/c/r -> |plus(1.5)",
};

/* program, expected result (doc/mmadt.md) */
static const char *const uses[][2] = {
        { "*/c/f", "plus(1)" },                 /* code prints desugared */
        { "5.V(*/c/f)", "6" },                  /* V applies quoted code */
        { "5./c/f()", "6" },                    /* stored code called by name */
        { "52./c/zz()", "114" },
        { "{2,3,4,5}./c/band(min=>3,max=>4)", "{3,4}" },
        { "*/c/t", "thread[[loop=>lift(plus(1)),halt=>true]]" },
        { "*/c/g", "[a=>plus(2),b=>3]" },
        { "7.*/c/g/a", "plus(2)" },
        { "/c/person[[name=>'pig']]", "/c/person[[name?str=>'pig',age?int=>29]]" },
        { "'a'./c/s()", "'a )(<x> \\' '" },     /* parens and quotes inside a str */
        { "<x>./c/u()", "x/a(b)" },             /* parens inside a bracketed uri */
        { "/c/nat[5]", "/c/nat[5]" },           /* a stored type checks values */
        { "*/c/f.eq(|plus(1))", "true" },       /* read back equals the code that wrote it */
        { "*/c/r", "plus(1.500000)" },          /* the REPL form: reals with 6 decimals */
        { "1.5./c/r()", "3.000000" },
};

START_TEST(test_code_survives_reopen)
{
        char *dir = test_tmpdir(), *p = join(dir, "code.db");
        vm_on_file v;
        hyb_error e = { 0 };

        ck_assert_int_eq(vof_open(&v, p, &e), 0);
        for (size_t i = 0; i < sizeof(stores) / sizeof(*stores); i++)
                hyb_free(run(&v, stores[i]));
        /* the same results before the reopen ... */
        for (size_t i = 0; i < sizeof(uses) / sizeof(*uses); i++)
                runs_as(&v, uses[i][0], uses[i][1]);
        vof_close(&v);

        /* ... and after it, in a store and a VM that never saw the code built */
        ck_assert_msg(vof_open(&v, p, &e) == 0, "reopen: %s", e.message);
        for (size_t i = 0; i < sizeof(uses) / sizeof(*uses); i++)
                runs_as(&v, uses[i][0], uses[i][1]);
        vof_close(&v);

        /* uses in the other order: the first use of each obj is a call, then a print */
        ck_assert_int_eq(vof_open(&v, p, &e), 0);
        for (size_t i = sizeof(uses) / sizeof(*uses); i-- > 0;)
                runs_as(&v, uses[i][0], uses[i][1]);
        vof_close(&v);
        free(p);
        test_rmrf(dir);
        free(dir);
}
END_TEST

/* The store alone (no VM) reads the row back as a code obj, formatting as it was written,
 * equal to and hashing as the code the VM built. */
START_TEST(test_code_read_by_store_alone)
{
        char *dir = test_tmpdir(), *p = join(dir, "code.db"), *txt = NULL;
        vm_on_file v;
        hyb_store *st = NULL;
        hyb_obj *built = NULL, *read = NULL;
        hyb_error e = { 0 };

        ck_assert_int_eq(vof_open(&v, p, &e), 0);
        hyb_free(run(&v, "/c/f -> |plus(1)"));
        ck_assert_int_eq(hyb_mmadt_eval(v.vm, "|plus(1)", (size_t)-1, NULL, &built, &e), 0);
        built = one(built);
        vof_close(&v);

        ck_assert_msg(hyb_store_open(p, NULL, &st, &e) == 0, "%s", e.message);
        ck_assert_int_eq(hyb_store_read_str(st, "/c/f", &read, &e), 0);
        ck_assert_int_eq(hyb_obj_get_kind(read), HYB_OBJ_CODE);
        ck_assert_int_eq(hyb_obj_format(read, HYB_FORMAT_REPL, &txt), 0);
        ck_assert_str_eq(txt, "plus(1)");
        hyb_free(txt);
        ck_assert_int_eq(hyb_obj_format(read, HYB_FORMAT_EXACT, &txt), 0);
        ck_assert_str_eq(txt, "|(plus(1))");
        hyb_free(txt);
        ck_assert(hyb_obj_equal(read, built));
        ck_assert(hyb_obj_equal(built, read));
        ck_assert_int_eq(hyb_obj_compare(read, built), 0);
        ck_assert_uint_eq(hyb_obj_hash(read), hyb_obj_hash(built));
        hyb_obj_unref(read);
        hyb_obj_unref(built);
        hyb_store_unref(st);
        free(p);
        test_rmrf(dir);
        free(dir);
}
END_TEST

static void set_row(const char *path, const char *furi, const char *value)
{
        sqlite3 *db = NULL;
        sqlite3_stmt *s = NULL;

        ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
        ck_assert_int_eq(sqlite3_prepare_v2(db, "UPDATE kv SET value = ?1, sum = ?2 WHERE furi = ?3",
                                            -1, &s, NULL), SQLITE_OK);
        sqlite3_bind_text(s, 1, value, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s, 2, db_row_sum(furi, strlen(furi), SQLITE_TEXT, 0, 0, value,
                                            strlen(value)));
        sqlite3_bind_text(s, 3, furi, -1, SQLITE_STATIC);
        ck_assert_int_eq(sqlite3_step(s), SQLITE_DONE);
        ck_assert_int_eq(sqlite3_changes(db), 1);
        sqlite3_finalize(s);
        sqlite3_close(db);
}

/* Text that is not code: unclosed fails the open; closed but not mm-ADT fails its first
 * use, with the store and the other rows intact. */
START_TEST(test_code_text_damage)
{
        char *dir = test_tmpdir(), *p = join(dir, "code.db");
        static const char *const unclosed[] = { "|(plus(1)", "|(plus(')'", "[a=>|(x(<)>)]", "|()" };
        vm_on_file v;
        hyb_obj *res = NULL;
        hyb_error e = { 0 };
        int r;

        ck_assert_int_eq(vof_open(&v, p, &e), 0);
        hyb_free(run(&v, "/c/f -> |plus(1)"));
        hyb_free(run(&v, "/c/i -> 3"));
        vof_close(&v);
        for (size_t i = 0; i < sizeof(unclosed) / sizeof(*unclosed); i++) {
                set_row(p, "/c/f", unclosed[i]);
                e = (hyb_error){ 0 };
                r = vof_open(&v, p, &e);
                ck_assert_msg(r == HYB_E_CORRUPT, "%s: %s", unclosed[i], hyb_err_name(r));
                ck_assert_msg(strstr(e.message, "cannot be parsed"), "%s", e.message);
        }

        set_row(p, "/c/f", "|(plus(1)).)");
        ck_assert_int_eq(vof_open(&v, p, &e), HYB_E_CORRUPT);
        set_row(p, "/c/f", "|(plus(1).)");
        ck_assert_int_eq(vof_open(&v, p, &e), 0);
        e = (hyb_error){ 0 };
        r = hyb_mmadt_eval(v.vm, "5./c/f()", (size_t)-1, NULL, &res, &e);
        ck_assert_msg(r == HYB_E_PARSE, "%s %s", hyb_err_name(r), e.message);
        ck_assert_msg(strstr(e.message, "cannot be compiled"), "%s", e.message);
        e = (hyb_error){ 0 };
        r = hyb_mmadt_eval(v.vm, "5.V(*/c/f)", (size_t)-1, NULL, &res, &e);
        ck_assert_msg(r == HYB_E_PARSE, "%s %s", hyb_err_name(r), e.message);
        runs_as(&v, "*/c/i", "3");
        vof_close(&v);
        free(p);
        test_rmrf(dir);
        free(dir);
}
END_TEST

/* Many threads apply one code obj read back from its text: one compilation is kept. */
typedef struct apply_arg {
        const hyb_obj *code;
        int ok;
} apply_arg;

static void *apply_many(void *data)
{
        apply_arg *a = data;
        hyb_store *st = NULL;
        hyb_backend *b = NULL;
        hyb_scope *sc = NULL;
        hyb_mmadt *vm = NULL;

        if (hyb_store_open(NULL, NULL, &st, NULL) < 0 || hyb_backend_new_store(st, &b) < 0 ||
            hyb_scope_new(b, NULL, "t", &sc) < 0 || hyb_mmadt_new(sc, "t", NULL, &vm) < 0)
                return NULL;
        if (hyb_store_write_str(st, "/k", a->code, 0, NULL) == 0) {
                for (int i = 0; i < 50; i++) {
                        hyb_obj *res = NULL;
                        if (hyb_mmadt_eval(vm, "41./k()", (size_t)-1, NULL, &res, NULL) == 0 &&
                            hyb_obj_get_int(res = one(res)) == 42)
                                a->ok++;
                        hyb_obj_unref(res);
                }
        }
        hyb_mmadt_unref(vm);
        hyb_scope_unref(sc);
        hyb_backend_unref(b);
        hyb_store_unref(st);
        return NULL;
}

START_TEST(test_code_text_threads)
{
        hyb_obj *code = NULL;
        pthread_t t[8];
        apply_arg a[8];

        ck_assert_int_eq(hyb_obj_parse("|(plus(1))", (size_t)-1, &code, NULL), 0);
        ck_assert_int_eq(hyb_obj_get_kind(code), HYB_OBJ_CODE);
        for (int i = 0; i < 8; i++) {
                a[i] = (apply_arg){ code, 0 };
                ck_assert_int_eq(pthread_create(&t[i], NULL, apply_many, &a[i]), 0);
        }
        for (int i = 0; i < 8; i++) {
                pthread_join(t[i], NULL);
                ck_assert_int_eq(a[i].ok, 50);
        }
        hyb_obj_unref(code);
}
END_TEST

Suite *store_code_suite(void)
{
        Suite *s = suite_create("store_code");
        TCase *tc = tcase_create("reopen");

        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_code_survives_reopen);
        tcase_add_test(tc, test_code_read_by_store_alone);
        tcase_add_test(tc, test_code_text_damage);
        tcase_add_test(tc, test_code_text_threads);
        suite_add_tcase(s, tc);
        return s;
}
