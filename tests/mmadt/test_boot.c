/* SPDX-License-Identifier: MIT */
/*
 * Threads on OS threads, and the boot loader (hyb_boot_new) on a libevent
 * base: boot data written only where nothing is, boot programs run in order,
 * their subscriptions served by the loop, errors reported with a position and
 * the boot going on; the `store:` and `boot:` config keys.
 */
#include <check.h>
#include <errno.h>
#include <event2/event.h>
#include <string.h>
#include <time.h>

#include "hybrid/hybrid.h"
#include "suites.h"

static hyb_obj *read_at(hyb_scope *sc, const char *furi)
{
        hyb_furi *f = NULL;
        hyb_obj *o = NULL;

        ck_assert_int_eq(hyb_furi_parse(furi, (size_t)-1, NULL, &f, NULL), 0);
        ck_assert_int_ge(hyb_scope_read(sc, f, &o, NULL), 0);
        hyb_furi_unref(f);
        return o;
}

static int64_t read_int(hyb_scope *sc, const char *furi)
{
        hyb_obj *o = read_at(sc, furi);
        int64_t v = hyb_obj_get_kind(o) == HYB_OBJ_INT ? hyb_obj_get_int(o) : -1;

        hyb_obj_unref(o);
        return v;
}

static void eval_ok(hyb_mmadt *vm, const char *src)
{
        hyb_obj *res = NULL;
        hyb_error e;
        int r = hyb_mmadt_eval(vm, src, (size_t)-1, NULL, &res, &e);

        ck_assert_msg(r >= 0, "%s: %s", src, e.message);
        hyb_obj_unref(res);
}

static uint64_t now_ms(void)
{
        return hyb_now_usec() / 1000;
}

/*
 * A thread writes /n over and over while this thread reads it, never stepping the
 * scheduler: the count grows only if the thread runs on an OS thread of its own.
 * Every read sees a whole int that never goes back.
 */
START_TEST(test_thread_writes_while_main_reads)
{
        hyb_mmadt *vm = NULL;
        hyb_scope *sc;
        int64_t last = 0, v = 0;
        uint64_t until;
        unsigned reads = 0;

        ck_assert_int_eq(hyb_mmadt_new(NULL, "t", NULL, &vm), 0);
        sc = hyb_mmadt_get_scope(vm);
        eval_ok(vm, "/n -> 0; thread[[loop=>^(*/n.plus(1).to(/n))]]@t; scheduler::spawn(@t)");
        until = now_ms() + 60000; /* a bound for a failure, valgrind included */
        /* Read on after /n reached 2000 too: on a loaded machine this thread may first run
         * when the other is already past it, and a single read would show nothing about order. */
        while ((v < 2000 || reads < 100) && now_ms() < until) {
                v = read_int(sc, "/n");
                ck_assert_msg(v >= last, "/n went back from %lld to %lld", (long long)last,
                              (long long)v);
                last = v;
                reads++;
        }
        ck_assert_msg(v >= 2000, "the thread did not run on its own: /n is %lld", (long long)v);
        ck_assert_uint_ge(reads, 100);
        /* halting joins the thread: /n stays where it is */
        ck_assert_int_eq(hyb_mmadt_halt_all(vm), 0);
        v = read_int(sc, "/n");
        {
                struct timespec ts = { 0, 20 * 1000 * 1000 };
                nanosleep(&ts, NULL);
        }
        ck_assert_int_eq(read_int(sc, "/n"), v);
        hyb_mmadt_unref(vm);
}
END_TEST

/* `t/halt -> true` from the owner ends the OS thread; /sys/scheduler then says halted. */
START_TEST(test_thread_halt_state)
{
        hyb_mmadt *vm = NULL;
        hyb_obj *res = NULL;
        hyb_error e;
        char *text = NULL;
        uint64_t until;
        bool halted = false;

        ck_assert_int_eq(hyb_mmadt_new(NULL, "t", NULL, &vm), 0);
        eval_ok(vm, "thread[[loop=>^(*c.else(0).plus(1).to(c))]]@t; scheduler::spawn(@t)");
        eval_ok(vm, "t/halt -> true");
        until = now_ms() + 60000; /* a bound for a failure, valgrind included */
        while (!halted && now_ms() < until) {
                ck_assert_int_ge(hyb_mmadt_eval(vm, "*/sys/scheduler/threads/0/state", (size_t)-1,
                                                NULL, &res, &e), 0);
                ck_assert_int_eq(hyb_obj_format(res, HYB_FORMAT_REPL, &text), 0);
                halted = strcmp(text, "{'halted'}") == 0;
                ck_assert_msg(halted || strcmp(text, "{'running'}") == 0, "state %s", text);
                hyb_free(text);
                hyb_obj_unref(res);
        }
        ck_assert(halted);
        hyb_mmadt_unref(vm);
}
END_TEST

/* A loop that fails ends its thread: /sys/scheduler says error, with the message. */
START_TEST(test_thread_error_state)
{
        hyb_mmadt *vm = NULL;
        hyb_obj *res = NULL;
        char *text = NULL;
        uint64_t until;
        bool failed = false;

        ck_assert_int_eq(hyb_mmadt_new(NULL, "t", NULL, &vm), 0);
        eval_ok(vm, "thread[[loop=>^(1.plus('a'))]]@t; scheduler::spawn(@t)");
        until = now_ms() + 60000; /* a bound for a failure, valgrind included */
        while (!failed && now_ms() < until) {
                ck_assert_int_ge(hyb_mmadt_eval(vm, "*/sys/scheduler/threads/0", (size_t)-1, NULL,
                                                &res, NULL), 0);
                ck_assert_int_eq(hyb_obj_format(res, HYB_FORMAT_REPL, &text), 0);
                failed = strstr(text, "state=>'error'") != NULL;
                if (failed)
                        ck_assert_msg(strstr(text, "error=>'plus needs operands of the same base "
                                                   "type, not int and str"), "%s", text);
                else
                        ck_assert_msg(strstr(text, "state=>'running'"), "%s", text);
                hyb_free(text);
                hyb_obj_unref(res);
        }
        ck_assert(failed);
        hyb_mmadt_unref(vm);
}
END_TEST

/* A subscription of the owner's VM fires for a thread's writes, delivered on the owner's turn. */
START_TEST(test_thread_write_reaches_owner_subscription)
{
        hyb_mmadt *vm = NULL;
        hyb_scope *sc;
        uint64_t until;

        ck_assert_int_eq(hyb_mmadt_new(NULL, "t", NULL, &vm), 0);
        sc = hyb_mmadt_get_scope(vm);
        eval_ok(vm, "/tick?sub -> |(plus(100).to(/seen))");
        eval_ok(vm, "thread[[loop=>^(5.to(/tick).map(true).to(t/halt))]]@t; scheduler::spawn(@t)");
        until = now_ms() + 60000; /* a bound for a failure, valgrind included */
        while (read_int(sc, "/seen") != 105 && now_ms() < until)
                ck_assert_int_ge(hyb_mmadt_step(vm, NULL), 0);
        ck_assert_int_eq(read_int(sc, "/seen"), 105);
        hyb_mmadt_unref(vm);
}
END_TEST

/* ---- the boot loader ---- */

typedef struct logbuf {
        char text[8192];
        size_t len;
} logbuf;

static void log_to(int level, const char *msg, void *ud)
{
        logbuf *lb = ud;
        int n = snprintf(lb->text + lb->len, sizeof(lb->text) - lb->len, "%d %s\n", level, msg);

        if (n > 0 && lb->len + (size_t)n < sizeof(lb->text))
                lb->len += (size_t)n;
}

static const char boot_yaml[] =
        "boot:\n"                                                   /* 1 */
        "  data:\n"                                                 /* 2 */
        "    /config/mode: \"'auto'\"\n"                            /* 3 */
        "    /config/keep: \"'default'\"\n"                         /* 4 */
        "    /config/list: \"[1,2,3]\"\n"                           /* 5 */
        "    /config/bad: \"[1,\"\n"                                /* 6 */
        "  programs:\n"                                             /* 7 */
        "    - inline: \"/in?sub -> |(plus(1).to(/out))\"\n"        /* 8 */
        "    - inline: |\n"                                         /* 9 */
        "        /first -> *config/mode\n"                          /* 10 */
        "        1.plus('a')\n"                                     /* 11 */
        "    - inline: \"*/config/mode.to(/seen_mode)\"\n"          /* 12 */
        "    - file: /nonexistent/hybrid/rules.mmadt\n";            /* 13 */

START_TEST(test_boot_data_and_programs)
{
        struct event_base *base = event_base_new();
        hyb_broker_config *cfg = NULL;
        hyb_store *st = NULL;
        hyb_scope *sc = NULL;
        hyb_boot *b = NULL;
        hyb_obj *o = NULL, *keep = NULL;
        logbuf lb = { .len = 0 };
        hyb_error e;
        char *text = NULL;
        uint64_t until;

        ck_assert_ptr_nonnull(base);
        ck_assert_int_eq(hyb_broker_config_new(&cfg), 0);
        ck_assert_msg(hyb_broker_config_load_string(cfg, boot_yaml, strlen(boot_yaml), &e) == 0,
                      "%s", e.message);
        ck_assert_int_eq(hyb_store_open(NULL, NULL, &st, NULL), 0);
        {
                hyb_backend *host = NULL;

                ck_assert_int_eq(hyb_backend_new_store(st, &host), 0);
                ck_assert_int_eq(hyb_scope_new(host, NULL, "test", &sc), 0);
                hyb_backend_unref(host);
        }
        /* a value already there is kept */
        ck_assert_int_eq(hyb_obj_parse("'mine'", (size_t)-1, &keep, NULL), 0);
        ck_assert_int_eq(hyb_store_write_str(st, "/config/keep", keep, 0, NULL), 0);

        ck_assert_int_eq(hyb_boot_new(sc, base, cfg, log_to, &lb, &b), 0);

        o = read_at(sc, "/config/mode");
        ck_assert_int_eq(hyb_obj_format(o, HYB_FORMAT_REPL, &text), 0);
        ck_assert_str_eq(text, "'auto'");
        hyb_free(text);
        hyb_obj_unref(o);
        o = read_at(sc, "/config/keep");
        ck_assert(hyb_obj_equal(o, keep));
        hyb_obj_unref(o);
        ck_assert_int_eq(read_int(sc, "/config/list/1"), 2);
        /* data came before programs: the third program read it */
        o = read_at(sc, "/seen_mode");
        ck_assert_int_eq(hyb_obj_format(o, HYB_FORMAT_REPL, &text), 0);
        ck_assert_str_eq(text, "'auto'");
        hyb_free(text);
        hyb_obj_unref(o);
        /* the failing statement of programs[1] stopped that program only, after its first line */
        ck_assert_int_eq(hyb_boot_get_n_errors(b), 3);
        ck_assert_msg(strstr(lb.text, "boot.data./config/bad (config line 6, column 18)"), "%s",
                      lb.text);
        ck_assert_msg(strstr(lb.text, "boot.programs[1] (config line 11), line 2, column"),
                      "%s", lb.text);
        ck_assert_msg(strstr(lb.text, "/nonexistent/hybrid/rules.mmadt"), "%s", lb.text);

        /* the subscription of programs[0] keeps running on the loop */
        ck_assert_int_eq(hyb_obj_parse("41", (size_t)-1, &o, NULL), 0);
        ck_assert_int_eq(hyb_store_write_str(st, "/in", o, 0, NULL), 0);
        hyb_obj_unref(o);
        until = now_ms() + 60000; /* a bound for a failure, valgrind included */
        while (read_int(sc, "/out") != 42 && now_ms() < until)
                event_base_loop(base, EVLOOP_ONCE);
        ck_assert_int_eq(read_int(sc, "/out"), 42);

        hyb_boot_free(b);
        hyb_obj_unref(keep);
        hyb_scope_unref(sc);
        hyb_store_unref(st);
        hyb_broker_config_unref(cfg);
        event_base_free(base);
}
END_TEST

/* hyb_boot_reload (SIGHUP): the new boot.data keys are written where nothing is, a value
 * there (from the first boot or written since) is kept, a bad entry is logged and counted,
 * and the programs do not run again. */
START_TEST(test_boot_reload_data)
{
        static const char first[] =
                "boot:\n"
                "  data:\n"
                "    /r/a: \"1\"\n"
                "  programs:\n"
                "    - inline: \"*/r/runs.else(0).plus(1).to(/r/runs)\"\n";
        static const char second[] =
                "boot:\n"                      /* 1 */
                "  data:\n"                    /* 2 */
                "    /r/a: \"10\"\n"         /* 3 */
                "    /r/b: \"2\"\n"          /* 4 */
                "    /r/c: \"3\"\n"          /* 5 */
                "    /r/bad: \"[1,\"\n"      /* 6 */
                "  programs:\n"
                "    - inline: \"*/r/runs.else(0).plus(1).to(/r/runs)\"\n";
        struct event_base *base = event_base_new();
        hyb_broker_config *cfg = NULL, *cfg2 = NULL;
        hyb_scope *sc = NULL;
        hyb_boot *b = NULL;
        hyb_obj *o = NULL;
        logbuf lb = { .len = 0 };
        hyb_error e;

        ck_assert_int_eq(hyb_broker_config_new(&cfg), 0);
        ck_assert_msg(hyb_broker_config_load_string(cfg, first, strlen(first), &e) == 0, "%s",
                      e.message);
        ck_assert_int_eq(hyb_scope_new(NULL, NULL, "test", &sc), 0);
        ck_assert_int_eq(hyb_boot_new(sc, base, cfg, log_to, &lb, &b), 0);
        ck_assert_int_eq(read_int(sc, "/r/a"), 1);
        ck_assert_int_eq(read_int(sc, "/r/runs"), 1);
        /* written since the boot: kept by the reload although the file names it */
        ck_assert_int_eq(hyb_obj_parse("30", (size_t)-1, &o, NULL), 0);
        {
                hyb_furi *f = NULL;

                ck_assert_int_eq(hyb_furi_parse("/r/c", (size_t)-1, NULL, &f, NULL), 0);
                ck_assert_int_eq(hyb_scope_write(sc, f, o, 0, NULL), 0);
                hyb_furi_unref(f);
        }
        hyb_obj_unref(o);

        ck_assert_int_eq(hyb_broker_config_new(&cfg2), 0);
        ck_assert_msg(hyb_broker_config_load_string(cfg2, second, strlen(second), &e) == 0, "%s",
                      e.message);
        ck_assert_int_eq(hyb_boot_reload(b, cfg2), 0);
        ck_assert_int_eq(read_int(sc, "/r/a"), 1);
        ck_assert_int_eq(read_int(sc, "/r/b"), 2);
        ck_assert_int_eq(read_int(sc, "/r/c"), 30);
        ck_assert_int_eq(read_int(sc, "/r/runs"), 1);
        ck_assert_uint_eq(hyb_boot_get_n_errors(b), 1);
        ck_assert_msg(strstr(lb.text, "boot.data./r/bad (config line 6, column"), "%s", lb.text);
        ck_assert_int_eq(hyb_boot_reload(NULL, cfg2), -EINVAL);
        ck_assert_int_eq(hyb_boot_reload(b, NULL), -EINVAL);

        hyb_boot_free(b);
        hyb_scope_unref(sc);
        hyb_broker_config_unref(cfg2);
        hyb_broker_config_unref(cfg);
        event_base_free(base);
}
END_TEST

/* A fiber a boot program bundles is stepped by the loop, with no one calling hyb_mmadt_step. */
START_TEST(test_boot_fiber_on_loop)
{
        static const char yaml[] =
                "boot:\n"
                "  programs:\n"
                "    - inline: \"fiber[[loop=>^(*/f/n.else(0).plus(1).to(/f/n))]]@/f/p; "
                "scheduler::bundle(@/f/p)\"\n";
        struct event_base *base = event_base_new();
        hyb_broker_config *cfg = NULL;
        hyb_scope *sc = NULL;
        hyb_boot *b = NULL;
        hyb_error e;
        uint64_t until;

        ck_assert_int_eq(hyb_broker_config_new(&cfg), 0);
        ck_assert_msg(hyb_broker_config_load_string(cfg, yaml, strlen(yaml), &e) == 0, "%s",
                      e.message);
        ck_assert_int_eq(hyb_scope_new(NULL, NULL, "test", &sc), 0);
        ck_assert_int_eq(hyb_boot_new(sc, base, cfg, NULL, NULL, &b), 0);
        ck_assert_uint_eq(hyb_boot_get_n_errors(b), 0);
        until = now_ms() + 60000; /* a bound for a failure, valgrind included */
        while (read_int(sc, "/f/n") < 5 && now_ms() < until)
                event_base_loop(base, EVLOOP_ONCE);
        ck_assert_int_ge(read_int(sc, "/f/n"), 5);
        hyb_boot_free(b);
        hyb_scope_unref(sc);
        hyb_broker_config_unref(cfg);
        event_base_free(base);
}
END_TEST

static void config_fails(const char *yaml, const char *want)
{
        hyb_broker_config *cfg = NULL;
        hyb_error e;

        ck_assert_int_eq(hyb_broker_config_new(&cfg), 0);
        hyb_error_clear(&e);
        ck_assert_int_eq(hyb_broker_config_load_string(cfg, yaml, strlen(yaml), &e), HYB_E_CONFIG);
        ck_assert_msg(strstr(e.message, want), "'%s' not in '%s'", want, e.message);
        hyb_broker_config_unref(cfg);
}

START_TEST(test_config_keys)
{
        hyb_broker_config *cfg = NULL;
        static const char ok[] = "store:\n  path: /tmp/x.db\n  durability: full\n";

        ck_assert_int_eq(hyb_broker_config_new(&cfg), 0);
        ck_assert_ptr_null(hyb_broker_config_get_store_path(cfg));
        ck_assert_int_eq(hyb_broker_config_get_store_durability(cfg), -1);
        ck_assert_int_eq(hyb_broker_config_load_string(cfg, ok, strlen(ok), NULL), 0);
        ck_assert_str_eq(hyb_broker_config_get_store_path(cfg), "/tmp/x.db");
        ck_assert_int_eq(hyb_broker_config_get_store_durability(cfg), HYB_DURABILITY_FULL);
        hyb_broker_config_unref(cfg);

        /* the boot lists as the loader kept them, through the public getters */
        {
                static const char bootyaml[] = "boot:\n  data:\n    /a: '1'\n    /b: 2\n"
                                               "  programs:\n    - inline: \"1\"\n"
                                               "    - file: /p.mmadt\n";
                hyb_broker_boot_item it = { .size = sizeof(it) };

                ck_assert_int_eq(hyb_broker_config_new(&cfg), 0);
                ck_assert_int_eq(hyb_broker_config_load_string(cfg, bootyaml, strlen(bootyaml),
                                                               NULL), 0);
                ck_assert_uint_eq(hyb_broker_config_get_n_boot(cfg, HYB_BOOT_DATA), 2);
                ck_assert_uint_eq(hyb_broker_config_get_n_boot(cfg, HYB_BOOT_PROGRAMS), 2);
                ck_assert_int_eq(hyb_broker_config_get_boot(cfg, HYB_BOOT_DATA, 1, &it), 0);
                ck_assert_str_eq(it.key, "/b");
                ck_assert_str_eq(it.text, "2");
                ck_assert_uint_eq(it.line, 4);
                ck_assert_int_eq(hyb_broker_config_get_boot(cfg, HYB_BOOT_PROGRAMS, 0, &it), 0);
                ck_assert_ptr_null(it.key);
                ck_assert_str_eq(it.text, "1");
                ck_assert_ptr_null(it.file);
                ck_assert_int_eq(hyb_broker_config_get_boot(cfg, HYB_BOOT_PROGRAMS, 1, &it), 0);
                ck_assert_ptr_null(it.text);
                ck_assert_str_eq(it.file, "/p.mmadt");
                ck_assert_uint_eq(it.line, 7);
                ck_assert_int_eq(hyb_broker_config_get_boot(cfg, HYB_BOOT_PROGRAMS, 2, &it),
                                 -ERANGE);
                it.size = 1;
                ck_assert_int_eq(hyb_broker_config_get_boot(cfg, HYB_BOOT_DATA, 0, &it), -EINVAL);
                hyb_broker_config_unref(cfg);
        }
        config_fails("store:\n  durability: fast\n",
                     "store.durability: expected memory, normal or full, got 'fast' at 2:15");
        config_fails("boot:\n  programs:\n    - inline: a\n      file: b\n",
                     "boot.programs[0].file: a program is either inline or a file, "
                     "not both at 4:13");
        config_fails("boot:\n  programs:\n    - {}\n",
                     "boot.programs[0]: a program needs inline or file");
        config_fails("boot:\n  data:\n    /a: [1]\n", "boot.data./a: expected an obj literal");
        config_fails("boot:\n  data:\n    /a: '1'\n    /a: '2'\n", "repeated fURI '/a' at 4:5");
        config_fails("boot:\n  program: []\n", "boot.program: unknown key, did you mean programs?");
}
END_TEST

Suite *boot_suite(void)
{
        Suite *s = suite_create("boot");
        TCase *tc = tcase_create("boot");

        tcase_add_test(tc, test_thread_writes_while_main_reads);
        tcase_add_test(tc, test_thread_halt_state);
        tcase_add_test(tc, test_thread_error_state);
        tcase_add_test(tc, test_thread_write_reaches_owner_subscription);
        tcase_add_test(tc, test_boot_data_and_programs);
        tcase_add_test(tc, test_boot_fiber_on_loop);
        tcase_add_test(tc, test_boot_reload_data);
        tcase_add_test(tc, test_config_keys);
        tcase_set_timeout(tc, 300);
        suite_add_tcase(s, tc);
        return s;
}
