/* SPDX-License-Identifier: MIT */
/*
 * mm-ADT conformance: the tests/mmadt/<name>.txt files hold cases written by hand from
 * doc/mmadt.md and FhatOS's documented behaviour:
 *
 *   > program line            (one or more; fed to the REPL logic line by line)
 *   ==>expected obj           (one line per result, in order)
 *   [ERROR] words             (an error whose message contains `words`)
 *   .                         (no output at all)
 *
 * Each case runs on a fresh VM through the public API with the REPL's
 * statement splitting (hyb_mmadt_is_complete), and its output lines must be
 * exactly the expected ones.  A few cases drive the `hybrid` binary itself.
 */
#include <check.h>
#include <stddef.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hybrid/hybrid.h"
#include "suites.h"
#include "testutil.h"

typedef struct mm_case {
        char *file;
        int line;
        char *program;
        char **expect;
        size_t n_expect;
} mm_case;

static mm_case *cases;
static size_t n_cases, alloc_cases;
static const char *cur_file;

static void add_case(int line)
{
        if (n_cases == alloc_cases) {
                alloc_cases = alloc_cases ? alloc_cases * 2 : 256;
                cases = realloc(cases, alloc_cases * sizeof(*cases));
        }
        cases[n_cases++] = (mm_case){.file = strdup(cur_file), .line = line};
}

static void append(char **s, const char *line)
{
        size_t a = *s ? strlen(*s) : 0, b = strlen(line);
        char *n = realloc(*s, a + b + 2);

        memcpy(n + a, line, b);
        n[a + b] = '\n';
        n[a + b + 1] = '\0';
        *s = n;
}

static void on_line(int line_no, char *line, void *ud)
{
        mm_case *c = n_cases ? &cases[n_cases - 1] : NULL;
        size_t len = strlen(line);

        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
                line[--len] = '\0';
        if (strncmp(line, "> ", 2) == 0 || strcmp(line, ">") == 0) {
                if (!c || c->n_expect || c->expect)
                        add_case(line_no);
                append(&cases[n_cases - 1].program, line + (len > 1 ? 2 : 1));
                return;
        }
        if (!c) {
                fprintf(stderr, "%s:%d: output before any program (ignored)\n", cur_file, line_no);
                return;
        }
        c->expect = realloc(c->expect, (c->n_expect + 1) * sizeof(char *));
        if (strcmp(line, ".") == 0) {
                /* no output: an empty expectation list, but the case is closed */
                c->expect[c->n_expect] = NULL;
                return;
        }
        c->expect[c->n_expect++] = strdup(line);
}

static void load_cases(void)
{
        glob_t g;

        if (n_cases)
                return;
        if (glob(test_data_path("mmadt/*.txt"), 0, NULL, &g) != 0)
                return;
        for (size_t i = 0; i < g.gl_pathc; i++) {
                /* not test_each_line: Check asserts may not run before the tests */
                char *buf = test_read_file(g.gl_pathv[i], NULL), *line;
                int no = 0;
                cur_file = g.gl_pathv[i];
                for (line = buf; line && *line;) {
                        char *nl = strchr(line, '\n');
                        if (nl)
                                *nl = '\0';
                        no++;
                        if (*line && *line != '#')
                                on_line(no, line, NULL);
                        line = nl ? nl + 1 : NULL;
                }
                free(buf);
        }
        globfree(&g);
}

/* ---- the REPL logic over the public API, collecting output lines ---- */

typedef struct outlines {
        char **lines;
        size_t n;
} outlines;

static void out_add(outlines *o, char *line)
{
        o->lines = realloc(o->lines, (o->n + 1) * sizeof(char *));
        o->lines[o->n++] = line;
}

static int on_result(const hyb_obj *obj, void *ud)
{
        char *s = NULL, *line;

        ck_assert_int_eq(hyb_obj_format(obj, HYB_FORMAT_REPL, &s), 0);
        ck_assert_int_ge(asprintf(&line, "==>%s", s), 0);
        hyb_free(s);
        out_add(ud, line);
        return 0;
}

static void run_chunk(hyb_mmadt *vm, const char *text, size_t len, outlines *o)
{
        hyb_mmadt_program *p = NULL;
        hyb_error e;
        char *line;
        int r = hyb_mmadt_compile(vm, text, len, &p, &e);

        if (r < 0) {
                ck_assert_int_ge(asprintf(&line, "[ERROR] %s", e.message), 0);
                out_add(o, line);
                return;
        }
        for (size_t i = 0; i < hyb_mmadt_program_get_n_statements(p); i++) {
                r = hyb_mmadt_run_statement(vm, p, i, NULL, on_result, o, &e);
                if (r == 0)
                        r = hyb_mmadt_step(vm, &e) < 0 ? -1 : 0;
                if (r < 0) {
                        ck_assert_msg(e.code != 0 && e.message[0], "error without a message");
                        ck_assert_int_ge(asprintf(&line, "[ERROR] %s", e.message), 0);
                        out_add(o, line);
                }
        }
        hyb_mmadt_program_unref(p);
}

static void run_program(const char *program, outlines *o)
{
        hyb_mmadt *vm = NULL;
        const char *p = program;
        char *buf = calloc(1, strlen(program) + 1);
        size_t len = 0;

        ck_assert_int_eq(hyb_mmadt_new(NULL, "test", NULL, &vm), 0);
        hyb_mmadt_set_budget(vm, 5000000);
        while (*p) {
                const char *nl = strchr(p, '\n');
                size_t n = nl ? (size_t)(nl - p + 1) : strlen(p);
                memcpy(buf + len, p, n);
                len += n;
                buf[len] = '\0';
                p += n;
                if (hyb_mmadt_is_complete(buf, len)) {
                        run_chunk(vm, buf, len, o);
                        len = 0;
                }
        }
        if (len)
                run_chunk(vm, buf, len, o);
        hyb_mmadt_halt_all(vm);
        hyb_mmadt_unref(vm);
        free(buf);
}

static bool line_matches(const char *want, const char *got)
{
        if (strncmp(want, "[ERROR]", 7) == 0) {
                const char *words = want + 7;
                while (*words == ' ')
                        words++;
                return strncmp(got, "[ERROR] ", 8) == 0 && strstr(got + 8, words) != NULL;
        }
        return strcmp(want, got) == 0;
}

START_TEST(test_conformance)
{
        mm_case *c = &cases[_i];
        outlines o = {0};
        char report[4096];
        size_t at = 0;
        bool ok;

        run_program(c->program, &o);
        ok = o.n == c->n_expect;
        for (size_t i = 0; ok && i < o.n; i++)
                ok = line_matches(c->expect[i], o.lines[i]);
        if (!ok) {
                at += snprintf(report + at, sizeof(report) - at, "%s:%d: %s  got:", c->file,
                               c->line, c->program);
                for (size_t i = 0; i < o.n && at < sizeof(report) - 200; i++)
                        at += snprintf(report + at, sizeof(report) - at, " {%s}", o.lines[i]);
                at += snprintf(report + at, sizeof(report) - at, "  want:");
                for (size_t i = 0; i < c->n_expect && at < sizeof(report) - 200; i++)
                        at += snprintf(report + at, sizeof(report) - at, " {%s}", c->expect[i]);
        }
        for (size_t i = 0; i < o.n; i++)
                free(o.lines[i]);
        free(o.lines);
        ck_assert_msg(ok, "%s", report);
}
END_TEST

/* ---- API-level checks ---- */

START_TEST(test_parse_error_position)
{
        hyb_mmadt *vm = NULL;
        hyb_mmadt_program *p = NULL;
        hyb_error e;

        ck_assert_int_eq(hyb_mmadt_new(NULL, "t", NULL, &vm), 0);
        ck_assert_int_eq(hyb_mmadt_compile(vm, "1.plus(2)\n3.plus(,)", (size_t)-1, &p, &e),
                         HYB_E_PARSE);
        ck_assert_int_eq(e.line, 2);
        ck_assert_int_eq(e.column, 8);
        ck_assert_ptr_null(p);
        ck_assert_int_eq(hyb_mmadt_compile(vm, "'abc", (size_t)-1, &p, &e), HYB_E_PARSE);
        ck_assert_int_eq(e.line, 1);
        ck_assert_int_eq(e.column, 1);
        hyb_mmadt_unref(vm);
}
END_TEST

static int keep_int(const hyb_obj *result, void *userdata)
{
        *(int64_t *)userdata = hyb_obj_get_int(result);
        return 0;
}

/* A program handle is reference counted: a kept reference outlives the creator's unref. */
START_TEST(test_program_ref)
{
        hyb_mmadt *vm = NULL;
        hyb_mmadt_program *p = NULL, *kept;
        int64_t got = 0;

        ck_assert_int_eq(hyb_mmadt_new(NULL, "t", NULL, &vm), 0);
        ck_assert_int_eq(hyb_mmadt_compile(vm, "20.plus(22)", (size_t)-1, &p, NULL), 0);
        kept = hyb_mmadt_program_ref(p);
        ck_assert_ptr_eq(kept, p);
        ck_assert_ptr_null(hyb_mmadt_program_unref(p));
        ck_assert_uint_eq(hyb_mmadt_program_get_n_statements(kept), 1);
        ck_assert_int_eq(hyb_mmadt_run_statement(vm, kept, 0, NULL, keep_int, &got, NULL), 0);
        ck_assert_int_eq(got, 42);
        ck_assert_ptr_null(hyb_mmadt_program_unref(kept));
        ck_assert_ptr_null(hyb_mmadt_program_unref(NULL));
        hyb_mmadt_unref(vm);
}
END_TEST

START_TEST(test_is_complete)
{
        ck_assert_int_eq(hyb_mmadt_is_complete("1.plus(2)\n", (size_t)-1), 1);
        ck_assert_int_eq(hyb_mmadt_is_complete("[1,\n", (size_t)-1), 0);
        ck_assert_int_eq(hyb_mmadt_is_complete("'ab\n", (size_t)-1), 0);
        ck_assert_int_eq(hyb_mmadt_is_complete("=== a\n", (size_t)-1), 0);
        ck_assert_int_eq(hyb_mmadt_is_complete("=== a\n===\n", (size_t)-1), 1);
        ck_assert_int_eq(hyb_mmadt_is_complete("[1,2]._/plus(1)\n", (size_t)-1), 0);
        ck_assert_int_eq(hyb_mmadt_is_complete("{1,2}._]count()\n", (size_t)-1), 0);
        ck_assert_int_eq(hyb_mmadt_is_complete("a <- b\n", (size_t)-1), 1);
        ck_assert_int_eq(hyb_mmadt_is_complete("[1,_]\n", (size_t)-1), 1);
}
END_TEST

static int count_fn(const hyb_obj *o, void *ud)
{
        (*(int *)ud)++;
        return 0;
}

static int stop_fn(const hyb_obj *o, void *ud)
{
        (*(int *)ud)++;
        return 7;
}

START_TEST(test_limits)
{
        hyb_mmadt *vm = NULL;
        hyb_mmadt_program *p = NULL;
        hyb_error e;
        int n = 0;

        ck_assert_int_eq(hyb_mmadt_new(NULL, "t", NULL, &vm), 0);
        /* budget: a long range is cut off, not run to the end */
        ck_assert_int_eq(hyb_mmadt_set_budget(vm, 1000), 0);
        ck_assert_int_eq(hyb_mmadt_compile(vm, "{1..100000000}.plus(1)", (size_t)-1, &p, &e), 0);
        ck_assert_int_eq(hyb_mmadt_run(vm, p, NULL, count_fn, &n, &e), HYB_E_BUDGET);
        ck_assert_int_lt(n, 1000);
        p = hyb_mmadt_program_unref(p);
        /* recursion: a self-calling instruction hits the depth limit */
        ck_assert_int_eq(hyb_mmadt_set_budget(vm, 0), 0);
        ck_assert_int_eq(hyb_mmadt_compile(vm, "f -> |(plus(1).f()); 1.f()", (size_t)-1, &p, &e),
                         0);
        ck_assert_int_eq(hyb_mmadt_run(vm, p, NULL, count_fn, &n, &e), HYB_E_DEPTH);
        p = hyb_mmadt_program_unref(p);
        /* memory: a string doubling itself */
        ck_assert_int_eq(hyb_mmadt_set_max_memory(vm, 1 << 20), 0);
        ck_assert_int_eq(hyb_mmadt_compile(vm, "'ab'.repeat(plus(_),100)", (size_t)-1, &p, &e), 0);
        ck_assert_int_eq(hyb_mmadt_run(vm, p, NULL, count_fn, &n, &e), HYB_E_LIMIT);
        p = hyb_mmadt_program_unref(p);
        /* a callback that stops the run */
        n = 0;
        ck_assert_int_eq(hyb_mmadt_compile(vm, "{1,2,3}", (size_t)-1, &p, &e), 0);
        ck_assert_int_eq(hyb_mmadt_run(vm, p, NULL, stop_fn, &n, &e), 7);
        ck_assert_int_eq(n, 1);
        hyb_mmadt_program_unref(p);
        hyb_mmadt_unref(vm);
}
END_TEST

/* hyb_mmadt_options: the defaults of doc/mmadt.md and the size stamp. */
START_TEST(test_options_size_stamp)
{
        hyb_mmadt_options o;
        hyb_mmadt *vm = NULL;
        hyb_obj *r = NULL;
        hyb_error e;

        hyb_mmadt_options_init(&o);
        ck_assert_uint_eq(o.size, sizeof o);
        ck_assert_uint_eq(o.budget, 10000000u);
        ck_assert_uint_eq(o.max_depth, 400);
        ck_assert_uint_eq(o.max_memory, (size_t)64 << 20);
        o.max_depth = 1;
        ck_assert_int_eq(hyb_mmadt_new(NULL, "t", &o, &vm), 0);
        ck_assert_int_eq(hyb_mmadt_eval(vm, "1.plus(2.plus(3))", (size_t)-1, NULL, &r, &e), HYB_E_DEPTH);
        vm = hyb_mmadt_unref(vm);
        /* An older caller whose struct ends before max_depth: that member is not read. */
        o.size = offsetof(hyb_mmadt_options, max_depth);
        ck_assert_int_eq(hyb_mmadt_new(NULL, "t", &o, &vm), 0);
        ck_assert_int_eq(hyb_mmadt_eval(vm, "1.plus(2.plus(3))", (size_t)-1, NULL, &r, &e), 0);
        r = hyb_obj_unref(r);
        hyb_mmadt_unref(vm);
}
END_TEST

static int twice(hyb_mmadt *vm, const hyb_obj *lhs, const hyb_obj *const *args, size_t n,
                 hyb_obj **ret, void *ud, hyb_error *reterr)
{
        if (hyb_obj_get_kind(lhs) != HYB_OBJ_INT)
                return HYB_E_TYPE;
        return hyb_obj_new_int(hyb_obj_get_int(lhs) * 2 + (n ? hyb_obj_get_int(args[0]) : 0), ret);
}

static int even(hyb_mmadt *vm, const hyb_obj *v, void *ud)
{
        return hyb_obj_get_kind(v) == HYB_OBJ_INT && hyb_obj_get_int(v) % 2 == 0;
}

START_TEST(test_native)
{
        hyb_mmadt *vm = NULL;
        hyb_slot *s1 = NULL, *s2 = NULL;
        hyb_obj *res = NULL;
        hyb_error e;
        char *txt = NULL;

        ck_assert_int_eq(hyb_mmadt_new(NULL, "t", NULL, &vm), 0);
        ck_assert_int_eq(hyb_mmadt_register_instruction(vm, "twice", twice, NULL, &s1), 0);
        ck_assert_int_eq(hyb_mmadt_register_type(vm, "/my/even", even, NULL, &s2), 0);
        ck_assert_int_eq(
                hyb_mmadt_eval(vm, "5.twice()\n5.twice(plus(1))\n{1,2,3,4}?/my/even\n/my/even[4]",
                               (size_t)-1, NULL, &res, &e),
                0);
        ck_assert_int_eq(hyb_obj_format(res, HYB_FORMAT_REPL, &txt), 0);
        ck_assert_str_eq(txt, "{10,16,2,4,/my/even[4]}");
        hyb_free(txt);
        res = hyb_obj_unref(res);
        ck_assert_int_eq(hyb_mmadt_eval(vm, "/my/even[3]", (size_t)-1, NULL, &res, &e), HYB_E_TYPE);
        ck_assert_ptr_nonnull(strstr(e.message, "3 is not a /my/even"));
        ck_assert_int_eq(hyb_mmadt_eval(vm, "'x'.twice()", (size_t)-1, NULL, &res, &e), HYB_E_TYPE);
        hyb_slot_unref(s1);
        ck_assert_int_eq(hyb_mmadt_eval(vm, "5.twice()", (size_t)-1, NULL, &res, &e),
                         HYB_E_NOT_FOUND);
        hyb_mmadt_unref(vm);
        hyb_slot_unref(s2); /* after the VM: harmless */
}
END_TEST

/* ---- the hybrid binary ---- */

static int run_cli(const char *args, const char *input, char *outbuf, size_t size)
{
        char cmd[8192], tmp[] = "/tmp/hyb-mmadt-XXXXXX";
        int fd = mkstemp(tmp), status;
        FILE *p;
        size_t n;

        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(write(fd, input, strlen(input)), (ssize_t)strlen(input));
        close(fd);
        /* The store rule (doc/hybrid.md "Which store"): no database named and no daemon at a
         * runtime dir of our own, so a default database in a data home of our own. */
        char *home = test_tmpdir();
        ck_assert_ptr_nonnull(home);
        snprintf(cmd, sizeof(cmd),
                 "HYBRID_DB= HYBRID_BUS= XDG_RUNTIME_DIR=%s XDG_DATA_HOME=%s %s %s < %s 2>/dev/null",
                 home, home, test_build_path("examples/hybrid/hybrid"), args, tmp);
        p = popen(cmd, "r");
        ck_assert_ptr_nonnull(p);
        n = fread(outbuf, 1, size - 1, p);
        outbuf[n] = '\0';
        status = pclose(p);
        unlink(tmp);
        test_rmrf(home);
        free(home);
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

START_TEST(test_cli_repl)
{
        char out[4096];

        ck_assert_int_eq(run_cli("repl", "1.plus(2)\n{1,2}\nnoobj\n", out, sizeof(out)), 0);
        ck_assert_str_eq(out, "==>3\n==>1\n==>2\n");
        /* an error goes on, and the exit status says it */
        ck_assert_int_eq(run_cli("repl", "1.plus('a')\n[1,\n2]\n", out, sizeof(out)), 1);
        ck_assert_str_eq(strstr(out, "\n") + 1, "==>[1,2]\n");
        ck_assert_int_eq(strncmp(out, "[ERROR] ", 8), 0);
}
END_TEST

START_TEST(test_cli_run)
{
        char out[4096], path[] = "/tmp/hyb-mmadt-run-XXXXXX", args[256];
        const char *prog = "a -> 1\n*a.plus(1)\n1.div(0)\n*a\n";
        int fd = mkstemp(path);

        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(write(fd, prog, strlen(prog)), (ssize_t)strlen(prog));
        close(fd);
        snprintf(args, sizeof(args), "run %s", path);
        ck_assert_int_eq(run_cli(args, "", out, sizeof(out)), 1);
        ck_assert_int_eq(strncmp(out, "==>1\n==>2\n[ERROR] ", 18), 0);
        ck_assert_ptr_null(strstr(out + 18, "==>"));
        unlink(path);
}
END_TEST

Suite *mmadt_suite(void)
{
        Suite *s = suite_create("mmadt");
        TCase *tc = tcase_create("conformance");
        TCase *api = tcase_create("api");

        load_cases();
        tcase_add_loop_test(tc, test_conformance, 0, (int)n_cases);
        tcase_set_timeout(tc, 60);
        suite_add_tcase(s, tc);
        tcase_add_test(api, test_parse_error_position);
        tcase_add_test(api, test_is_complete);
        tcase_add_test(api, test_program_ref);
        tcase_add_test(api, test_limits);
        tcase_add_test(api, test_options_size_stamp);
        tcase_add_test(api, test_native);
        tcase_add_test(api, test_cli_repl);
        tcase_add_test(api, test_cli_run);
        suite_add_tcase(s, api);
        return s;
}
