/* SPDX-License-Identifier: MIT */
/*
 * The store never hides damage: flipped bits in the database file, rows that
 * do not parse, databases made before row checksums, an unclean shutdown over
 * a damaged file, a read-only file in a read-only directory, a full disk.
 * Expected values are the literals written here; a read either gives them
 * back exactly or fails (HYB_E_CORRUPT, or HYB_E_DATABASE for a file SQLite
 * no longer recognises), never something else with success.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <grp.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hybrid/store.h"
#include "store/store-internal.h"
#include "suites.h"
#include "testutil.h"

static hyb_obj *obj(const char *text)
{
        hyb_obj *o = NULL;

        ck_assert_msg(hyb_obj_parse(text, (size_t)-1, &o, NULL) == 0, "parse %s", text);
        return o;
}

static void put_ok(hyb_store *st, const char *f, const char *v)
{
        hyb_obj *o = obj(v);
        hyb_error e = { 0 };
        int r = hyb_store_write_str(st, f, o, 0, &e);

        ck_assert_msg(r == 0, "put %s %s: %s %s", f, v, hyb_err_name(r), e.message);
        hyb_obj_unref(o);
}

/* true when f reads back as exactly the obj of text (kind and value) */
static bool reads_as(hyb_store *st, const char *f, const char *text, int *ret_r)
{
        hyb_obj *o = NULL, *x = obj(text);
        bool same;

        *ret_r = hyb_store_read_str(st, f, &o, NULL);
        same = *ret_r == 0 && hyb_obj_equal(o, x) && hyb_obj_get_kind(o) == hyb_obj_get_kind(x);
        hyb_obj_unref(o);
        hyb_obj_unref(x);
        return same;
}

static void sql(const char *path, const char *stmt)
{
        sqlite3 *db = NULL;
        char *msg = NULL;

        ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
        ck_assert_msg(sqlite3_exec(db, stmt, NULL, NULL, &msg) == SQLITE_OK, "%s: %s", stmt, msg);
        sqlite3_close(db);
}

static int64_t sql_int(const char *path, const char *q)
{
        sqlite3 *db = NULL;
        sqlite3_stmt *s = NULL;
        int64_t v = -1;

        ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
        ck_assert_int_eq(sqlite3_prepare_v2(db, q, -1, &s, NULL), SQLITE_OK);
        if (sqlite3_step(s) == SQLITE_ROW)
                v = sqlite3_column_int64(s, 0);
        sqlite3_finalize(s);
        sqlite3_close(db);
        return v;
}

static char *join(const char *dir, const char *name)
{
        char *p = NULL;

        ck_assert_int_ge(asprintf(&p, "%s/%s", dir, name), 0);
        return p;
}

static void write_file(const char *path, const char *data, size_t len)
{
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(write(fd, data, len), (ssize_t)len);
        close(fd);
}

/* ---- bit flips ---- */

#define N_FLIP_ROWS 120
#define N_SEEDS 400

/* The value of row i, as obj text: ints, reals, strs, lsts, recs, a few past one page. */
static void row_value(int i, char *buf, size_t len)
{
        switch (i % 6) {
        case 0:
                snprintf(buf, len, "%d", i * 7919 - 300000);
                break;
        case 1:
                snprintf(buf, len, "%d.25", i);
                break;
        case 2:
                snprintf(buf, len, "'row %d of the bit-flip test'", i);
                break;
        case 3:
                snprintf(buf, len, "[%d,%d,'x',true]", i, i + 1);
                break;
        case 4:
                snprintf(buf, len, "[a=>%d,b=>'%d']", i, i * 3);
                break;
        default:
                if (i % 30 == 5) {
                        /* a value longer than a page: overflow pages */
                        size_t n = 0;
                        n += (size_t)snprintf(buf, len, "'");
                        for (; n < 6000 && n + 2 < len; n++)
                                buf[n] = (char)('a' + (n + (size_t)i) % 26);
                        snprintf(buf + n, len - n, "'");
                } else
                        snprintf(buf, len, "'%d'@int", i); /* not a plain int: text form */
        }
}

static uint32_t next_rand(uint64_t *s)
{
        *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
        return (uint32_t)(*s >> 33);
}

/*
 * Flips bits in the data pages of a store file, seed after seed, and opens each copy: the open
 * fails, or every row reads back exactly as written and no row is missing or added.  Before
 * rows had checksums, an unparseable row was skipped and a flipped digit came back as data.
 */
START_TEST(test_bitflip)
{
        char *dir = test_tmpdir(), *orig = join(dir, "orig.db"), *copy = join(dir, "copy.db");
        char *buf = malloc(8192), *wal = join(dir, "copy.db-wal"), *shm = join(dir, "copy.db-shm");
        hyb_store *st = NULL;
        size_t len = 0, page;
        char *file;
        int opened = 0, corrupt = 0, dberr = 0, intact = 0;

        ck_assert_ptr_nonnull(buf);
        ck_assert_int_eq(hyb_store_open(orig, NULL, &st, NULL), 0);
        for (int i = 0; i < N_FLIP_ROWS; i++) {
                char f[32];
                snprintf(f, sizeof(f), "/flip/%d", i);
                row_value(i, buf, 8192);
                put_ok(st, f, buf);
        }
        hyb_store_unref(st); /* a clean close: checkpointed into the main file */
        file = test_read_file(orig, &len);
        ck_assert_ptr_nonnull(file);
        page = (size_t)(((unsigned char)file[16] << 8) | (unsigned char)file[17]);
        if (page == 1)
                page = 65536;
        ck_assert_uint_ge(len / page, 4);

        for (uint64_t seed = 1; seed <= N_SEEDS; seed++) {
                uint64_t rs = seed * 0x9e3779b97f4a7c15ULL;
                int n_flips = 1 + (int)(seed % 3), r;
                hyb_obj *all = NULL;

                for (int k = 0; k < n_flips; k++) {
                        /* a data page: not page 1 (the header and the schema) */
                        size_t at = page + next_rand(&rs) % (len - page);
                        file[at] ^= (char)(1u << (next_rand(&rs) % 8));
                }
                unlink(wal);
                unlink(shm);
                write_file(copy, file, len);
                st = NULL;
                r = hyb_store_open(copy, NULL, &st, NULL);
                if (r < 0) {
                        ck_assert_msg(r == HYB_E_CORRUPT || r == HYB_E_DATABASE,
                                      "seed %llu: open failed with %s", (unsigned long long)seed,
                                      hyb_err_name(r));
                        if (r == HYB_E_CORRUPT)
                                corrupt++;
                        else
                                dberr++;
                } else {
                        opened++;
                        for (int i = 0; i < N_FLIP_ROWS; i++) {
                                char f[32];
                                snprintf(f, sizeof(f), "/flip/%d", i);
                                row_value(i, buf, 8192);
                                ck_assert_msg(reads_as(st, f, buf, &r),
                                              "seed %llu: %s read back altered or missing (%s)",
                                              (unsigned long long)seed, f, hyb_err_name(r));
                        }
                        ck_assert_int_eq(hyb_store_read_str(st, "/#", &all, NULL), 0);
                        ck_assert_msg(hyb_obj_get_len(all) == N_FLIP_ROWS,
                                      "seed %llu: %zu rows, want %d", (unsigned long long)seed,
                                      hyb_obj_get_len(all), N_FLIP_ROWS);
                        hyb_obj_unref(all);
                        hyb_store_unref(st);
                        intact++;
                }
                /* undo: the next seed starts from the original file */
                free(file);
                file = test_read_file(orig, &len);
        }
        fprintf(stderr, "store bit flips: %d seeds, %d refused as corrupt, %d as not a database, "
                "%d opened intact\n", N_SEEDS, corrupt, dberr, intact);
        ck_assert_int_eq(opened, intact);
        ck_assert_int_gt(corrupt, 0);
        free(file);
        free(buf);
        free(orig);
        free(copy);
        free(wal);
        free(shm);
        test_rmrf(dir);
        free(dir);
}
END_TEST

/* ---- rows that cannot be read ---- */

static void made_db(const char *path)
{
        hyb_store *st = NULL;

        ck_assert_int_eq(hyb_store_open(path, NULL, &st, NULL), 0);
        put_ok(st, "/a/b", "[1,2]");
        put_ok(st, "/a/c", "3");
        put_ok(st, "/a/d", "'text'");
        hyb_store_unref(st);
}

static void open_fails_naming(const char *path, const char *furi, const char *why)
{
        hyb_store *st = NULL;
        hyb_error e = { 0 };

        ck_assert_int_eq(hyb_store_open(path, NULL, &st, &e), HYB_E_CORRUPT);
        ck_assert_ptr_null(st);
        ck_assert_msg(strstr(e.message, furi) && strstr(e.message, "corrupt") &&
                              strstr(e.message, why),
                      "message: %s", e.message);
}

typedef struct found {
        int n;
        char lines[8][200];
} found;

static void on_problem(const char *furi, const char *problem, void *ud)
{
        found *f = ud;

        if (f->n < 8)
                snprintf(f->lines[f->n], sizeof(f->lines[0]), "%s: %s", furi ? furi : "(file)",
                         problem);
        f->n++;
}

/* A value changed behind the store's back: its sum no longer matches. */
START_TEST(test_altered_row_is_corrupt)
{
        char *dir = test_tmpdir(), *p = join(dir, "s.db");
        found f = { 0 };

        made_db(p);
        ck_assert_int_eq(hyb_store_check(p, on_problem, &f, NULL), 0);
        sql(p, "UPDATE kv SET value = '[1,3]' WHERE furi = '/a/b'");
        open_fails_naming(p, "/a/b", "checksum");
        ck_assert_int_eq(hyb_store_check(p, on_problem, &f, NULL), 1);
        ck_assert_str_eq(f.lines[0], "/a/b: row does not match its checksum");
        /* an int whose storage class changed (a flipped serial type) */
        sql(p, "UPDATE kv SET value = '[1,2]' WHERE furi = '/a/b';"
               "UPDATE kv SET value = 3.0 WHERE furi = '/a/c'");
        open_fails_naming(p, "/a/c", "checksum");
        free(p);
        test_rmrf(dir);
        free(dir);
}
END_TEST

/* A row whose sum is right but whose value does not parse (written by a bug, or by hand). */
START_TEST(test_unparseable_row_is_corrupt)
{
        char *dir = test_tmpdir(), *p = join(dir, "s.db"), *stmt = NULL;
        const char *bad = "[1,";
        found f = { 0 };

        made_db(p);
        ck_assert_int_ge(asprintf(&stmt, "UPDATE kv SET value = '%s', sum = %lld WHERE furi = "
                                  "'/a/d'", bad,
                                  (long long)db_row_sum("/a/d", 4, SQLITE_TEXT, 0, 0, bad,
                                                        strlen(bad))), 0);
        sql(p, stmt);
        open_fails_naming(p, "/a/d", "cannot be parsed");
        ck_assert_int_eq(hyb_store_check(p, on_problem, &f, NULL), 1);
        ck_assert_str_eq(f.lines[0], "/a/d: value cannot be parsed");
        free(stmt);
        free(p);
        test_rmrf(dir);
        free(dir);
}
END_TEST

/* A database made before row sums: rows gain theirs on the first open for writing (a row that
 * cannot be read is not blessed), after which a changed value is caught. */
START_TEST(test_upgrade_old_database)
{
        char *dir = test_tmpdir(), *p = join(dir, "old.db"), *q = join(dir, "oldbad.db");
        static const char old_layout[] =
                "PRAGMA journal_mode=WAL; PRAGMA application_id=1215914545;"
                "CREATE TABLE kv(furi TEXT PRIMARY KEY NOT NULL, value NOT NULL) WITHOUT ROWID;"
                "CREATE TABLE journal(seq INTEGER PRIMARY KEY, origin INTEGER NOT NULL,"
                " ops BLOB NOT NULL);"
                "CREATE TABLE handles(origin INTEGER PRIMARY KEY, pid INTEGER NOT NULL);"
                "INSERT INTO kv VALUES('/o/i', 41), ('/o/r', 2.5), ('/o/s', '''old''');";
        hyb_store *st = NULL;
        int r;

        sql(p, old_layout);
        ck_assert_int_eq(hyb_store_open(p, NULL, &st, NULL), 0);
        ck_assert(reads_as(st, "/o/i", "41", &r));
        ck_assert(reads_as(st, "/o/r", "2.5", &r));
        ck_assert(reads_as(st, "/o/s", "'old'", &r));
        put_ok(st, "/o/new", "1");
        hyb_store_unref(st);
        ck_assert_int_eq(sql_int(p, "PRAGMA user_version"), 1);
        ck_assert_int_eq(sql_int(p, "SELECT count(*) FROM kv WHERE sum IS NULL"), 0);
        ck_assert_int_eq(hyb_store_check(p, NULL, NULL, NULL), 0);
        sql(p, "UPDATE kv SET value = 42 WHERE furi = '/o/i'");
        open_fails_naming(p, "/o/i", "checksum");
        /* after the upgrade a row without a sum is damage */
        sql(p, "UPDATE kv SET value = 41 WHERE furi = '/o/i'; UPDATE kv SET sum = NULL WHERE "
               "furi = '/o/r'");
        open_fails_naming(p, "/o/r", "checksum is missing");

        sql(q, old_layout);
        sql(q, "INSERT INTO kv VALUES('/o/bad', '[1,')");
        open_fails_naming(q, "/o/bad", "cannot be parsed");
        ck_assert_int_eq(sql_int(q, "PRAGMA user_version"), 0);
        free(p);
        free(q);
        test_rmrf(dir);
        free(dir);
}
END_TEST

/*
 * A leaf page of kv whose cell count is one lower (one flipped bit can do it): the rows left
 * are intact, one is simply gone, and SQLite does not notice while reading.  Its quick check,
 * run by every open, does.
 */
START_TEST(test_lost_row_is_corrupt)
{
        char *dir = test_tmpdir(), *p = join(dir, "lost.db"), *file, v[64];
        hyb_store *st = NULL;
        hyb_error e = { 0 };
        found f = { 0 };
        size_t len = 0, page;
        bool done = false;

        ck_assert_int_eq(hyb_store_open(p, NULL, &st, NULL), 0);
        for (int i = 0; i < 300; i++) {
                char k[32];
                snprintf(k, sizeof(k), "/lost/%d", i);
                snprintf(v, sizeof(v), "'value %d'", i);
                put_ok(st, k, v);
        }
        hyb_store_unref(st);
        ck_assert_int_eq(hyb_store_check(p, NULL, NULL, NULL), 0);
        file = test_read_file(p, &len);
        ck_assert_ptr_nonnull(file);
        page = (size_t)(((unsigned char)file[16] << 8) | (unsigned char)file[17]);
        /* kv is the only WITHOUT ROWID table: its leaves are index-leaf pages (type 10) */
        for (size_t off = page; off + page <= len && !done; off += page) {
                unsigned cells = (unsigned)((unsigned char)file[off + 3] << 8 |
                                            (unsigned char)file[off + 4]);
                if (file[off] == 10 && cells > 10) {
                        cells--;
                        file[off + 3] = (char)(cells >> 8);
                        file[off + 4] = (char)(cells & 0xff);
                        done = true;
                }
        }
        ck_assert(done);
        write_file(p, file, len);
        free(file);
        ck_assert_int_eq(hyb_store_open(p, NULL, &st, &e), HYB_E_CORRUPT);
        ck_assert_msg(strstr(e.message, "corrupt (SQLite's quick check: ") &&
                              strstr(e.message, "lost.db"), "%s", e.message);
        ck_assert_int_gt(hyb_store_check(p, on_problem, &f, NULL), 0);
        free(p);
        test_rmrf(dir);
        free(dir);
}
END_TEST

/*
 * Another process's journal row whose ops were changed after it was written (here: the int 2
 * became 3): the reader does not apply it, it reloads kv, whose rows are verified.
 */
START_TEST(test_damaged_journal_row)
{
        char *dir = test_tmpdir(), *p = join(dir, "j.db");
        hyb_store *a = NULL, *b = NULL;
        int64_t three = 3;
        char *stmt = NULL, hex[17];
        int r;

        ck_assert_int_eq(hyb_store_open(p, NULL, &a, NULL), 0);
        ck_assert_int_eq(hyb_store_open(p, NULL, &b, NULL), 0);
        put_ok(a, "/j", "1");
        while (hyb_store_process(b) > 0)
                ;
        ck_assert(reads_as(b, "/j", "1", &r));
        put_ok(a, "/j", "2"); /* its journal row: "/j" NUL 'i' int64 (host order) */
        for (int i = 0; i < 8; i++)
                snprintf(hex + 2 * i, 3, "%02X", ((unsigned char *)&three)[i]);
        ck_assert_int_ge(asprintf(&stmt, "UPDATE journal SET ops = X'2F6A0069%s' WHERE seq = "
                                  "(SELECT max(seq) FROM journal)", hex), 0);
        sql(p, stmt);
        free(stmt);
        ck_assert(reads_as(b, "/j", "2", &r));
        hyb_store_unref(a);
        hyb_store_unref(b);
        free(p);
        test_rmrf(dir);
        free(dir);
}
END_TEST

/* ---- damage outside the rows ---- */

/* Points the first leaf of the free list at a page past the end of the file: damage no read of
 * the rows touches, which SQLite's quick check finds. */
static void damage_freelist(const char *path)
{
        size_t len = 0, page;
        char *file = test_read_file(path, &len);
        uint32_t trunk;

        ck_assert_ptr_nonnull(file);
        page = (size_t)(((unsigned char)file[16] << 8) | (unsigned char)file[17]);
        trunk = (uint32_t)((unsigned char)file[32] << 24 | (unsigned char)file[33] << 16 |
                           (unsigned char)file[34] << 8 | (unsigned char)file[35]);
        ck_assert_uint_gt(trunk, 1);
        ck_assert_uint_le(trunk * page, len);
        memcpy(file + (trunk - 1) * page + 8, "\x7f\xff\xff\x00", 4);
        write_file(path, file, len);
        free(file);
}

/*
 * Runs fn(p) in a child process and returns its result (0..255; 255 if the child died first).
 * The result comes through a pipe, not the exit status: under scripts/check-memory the exit
 * status is valgrind's own (--error-exitcode), and a child that _exits without freeing what
 * its parent allocated is not a leak of the code under test.
 */
static int in_child(int (*fn)(const char *), const char *p)
{
        unsigned char res = 255;
        int fds[2], status;
        pid_t pid;

        ck_assert_int_eq(pipe2(fds, O_CLOEXEC), 0);
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                unsigned char b = (unsigned char)fn(p);

                _exit(write(fds[1], &b, 1) == 1 ? 0 : 255);
        }
        close(fds[1]);
        if (read(fds[0], &res, 1) != 1)
                res = 255;
        close(fds[0]);
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        return res;
}

/* A process that dies with the store file open and a write in its -wal. */
static int die_with_wal(const char *p)
{
        sqlite3 *db = NULL;

        sqlite3_open(p, &db);
        return sqlite3_exec(db, "INSERT INTO handles VALUES(12345, 2147483000)", NULL, NULL,
                            NULL) == SQLITE_OK ? 0 : 1;
}

/* The open checks the file, after a clean shutdown as after a process that died with it open;
 * `store check` lists what it found as damage outside any row. */
START_TEST(test_quick_check_at_open)
{
        char *dir = test_tmpdir(), *p = join(dir, "u.db"), big[1100];
        hyb_store *st = NULL;
        hyb_obj *del = hyb_obj_noobj();
        found f = { 0 };
        hyb_error e = { 0 };

        memset(big, 'z', sizeof(big));
        big[0] = '\'';
        big[sizeof(big) - 2] = '\'';
        big[sizeof(big) - 1] = '\0';
        ck_assert_int_eq(hyb_store_open(p, NULL, &st, NULL), 0);
        for (int i = 0; i < 200; i++) {
                char k[32];
                snprintf(k, sizeof(k), "/u/%d", i);
                put_ok(st, k, big);
        }
        ck_assert_int_eq(hyb_store_write_str(st, "/u/#", del, 0, NULL), 0);
        put_ok(st, "/kept", "7");
        hyb_store_unref(st);
        ck_assert_int_gt(sql_int(p, "PRAGMA freelist_count"), 10);
        ck_assert_int_eq(hyb_store_check(p, NULL, NULL, NULL), 0);
        damage_freelist(p);

        ck_assert_int_eq(hyb_store_open(p, NULL, &st, &e), HYB_E_CORRUPT);
        ck_assert_msg(strstr(e.message, "quick check") && strstr(e.message, "u.db"), "%s",
                      e.message);
        ck_assert_int_gt(hyb_store_check(p, on_problem, &f, NULL), 0);
        ck_assert_msg(strncmp(f.lines[0], "(file): ", 8) == 0, "%s", f.lines[0]);

        /* a process that died with the store open (a write in the -wal): still checked */
        sql(p, "PRAGMA journal_mode=WAL");
        ck_assert_int_eq(in_child(die_with_wal, p), 0);
        ck_assert_int_eq(hyb_store_open(p, NULL, &st, &e), HYB_E_CORRUPT);
        ck_assert_msg(strstr(e.message, "quick check"), "%s", e.message);
        free(p);
        test_rmrf(dir);
        free(dir);
}
END_TEST

/* ---- read-only ---- */

static int setgroups_none(void)
{
        return setgroups(0, NULL);
}

/*
 * In a child that may not write path or its directory (uid 65534 when we are root, else the
 * modes alone): reads work, writes fail with HYB_E_READ_ONLY, nothing is created beside the
 * file.  Exit status: 0 passed, 77 the setup cannot fail (we may write after all), else the
 * number of the failed step.
 */
static int ro_child(const char *p)
{
        hyb_store *st = NULL;
        hyb_obj *o = obj("5");
        hyb_error e = { 0 };
        char side[4096];
        int r;

        if (geteuid() == 0 && (setgroups_none() < 0 || setgid(65534) < 0 || setuid(65534) < 0))
                return 77;
        if (access(p, W_OK) == 0) {
                char *dir = strdup(p);
                *strrchr(dir, '/') = '\0';
                r = access(dir, W_OK);
                free(dir);
                if (r == 0)
                        return 77;
        }
        r = hyb_store_open(p, NULL, &st, &e);
        if (r < 0) {
                fprintf(stderr, "read-only open: %s %s\n", hyb_err_name(r), e.message);
                return 1;
        }
        if (!reads_as(st, "/ro/a", "[1,'one']", &r) || !reads_as(st, "/ro/b", "2.5", &r))
                return 2;
        r = hyb_store_write_str(st, "/ro/a", o, 0, &e);
        if (r != HYB_E_READ_ONLY || !strstr(e.message, "read-only")) {
                fprintf(stderr, "read-only write: %s %s\n", hyb_err_name(r), e.message);
                return 3;
        }
        if (!reads_as(st, "/ro/a", "[1,'one']", &r))
                return 4;
        /* transient writes store nothing: they still reach subscribers */
        if (hyb_store_write_str(st, "/ro/t", o, HYB_WRITE_TRANSIENT, NULL) != 0)
                return 5;
        hyb_store_unref(st);
        hyb_obj_unref(o);
        snprintf(side, sizeof(side), "%s-wal", p);
        if (access(side, F_OK) == 0)
                return 6;
        snprintf(side, sizeof(side), "%s-shm", p);
        if (access(side, F_OK) == 0)
                return 7;
        return 0;
}

/* The same child, for a file with commits pending in its -wal: refused, saying why. */
static int ro_wal_child(const char *p)
{
        hyb_store *st = NULL;
        hyb_error e = { 0 };
        int r;

        if (geteuid() == 0 && (setgroups_none() < 0 || setgid(65534) < 0 || setuid(65534) < 0))
                return 77;
        if (access(p, W_OK) == 0)
                return 77;
        r = hyb_store_open(p, NULL, &st, &e);
        if (r != HYB_E_READ_ONLY || !strstr(e.message, "-wal")) {
                fprintf(stderr, "read-only with -wal: %s %s\n", hyb_err_name(r), e.message);
                return 1;
        }
        return 0;
}


/* Writes /ro/a = 2 and dies without closing: the commit stays in the -wal. */
static int write_and_die(const char *p)
{
        hyb_store *c = NULL;
        hyb_obj *o = obj("2");

        return hyb_store_open(p, NULL, &c, NULL) != 0 ||
               hyb_store_write_str(c, "/ro/a", o, 0, NULL) != 0;
}

START_TEST(test_read_only)
{
        char *top = test_tmpdir(), *dir = join(top, "ro"), *p = join(dir, "s.db");
        char *wdir = join(top, "rowal"), *wp = join(wdir, "s.db");
        char *odir = join(top, "rodir"), *op = join(odir, "s.db");
        hyb_store *st = NULL;

        ck_assert_int_eq(chmod(top, 0755), 0);
        ck_assert_int_eq(mkdir(dir, 0755), 0);
        ck_assert_int_eq(mkdir(wdir, 0755), 0);
        ck_assert_int_eq(mkdir(odir, 0755), 0);
        ck_assert_int_eq(hyb_store_open(p, NULL, &st, NULL), 0);
        put_ok(st, "/ro/a", "[1,'one']");
        put_ok(st, "/ro/b", "2.5");
        hyb_store_unref(st);
        ck_assert_int_eq(chmod(p, 0444), 0);
        ck_assert_int_eq(chmod(dir, 0555), 0);
        ck_assert_int_eq(in_child(ro_child, p), 0);

        /* a file we may write, in a directory we may not: no -wal can be made, so read-only */
        ck_assert_int_eq(hyb_store_open(op, NULL, &st, NULL), 0);
        put_ok(st, "/ro/a", "[1,'one']");
        put_ok(st, "/ro/b", "2.5");
        hyb_store_unref(st);
        ck_assert_int_eq(chmod(op, 0666), 0);
        ck_assert_int_eq(chmod(odir, 0555), 0);
        ck_assert_int_eq(in_child(ro_child, op), 0);

        /* a process died with commits in the -wal: immutable=1 would not see them */
        ck_assert_int_eq(hyb_store_open(wp, NULL, &st, NULL), 0);
        put_ok(st, "/ro/a", "1");
        hyb_store_unref(st);
        ck_assert_int_eq(in_child(write_and_die, wp), 0);
        ck_assert_int_eq(chmod(wp, 0444), 0);
        ck_assert_int_eq(chmod(wdir, 0555), 0);
        ck_assert_int_eq(in_child(ro_wal_child, wp), 0);

        chmod(dir, 0755);
        chmod(wdir, 0755);
        chmod(odir, 0755);
        free(p);
        free(wp);
        free(op);
        free(dir);
        free(wdir);
        free(odir);
        test_rmrf(top);
        free(top);
}
END_TEST

/* ---- disk full ---- */

/*
 * The database may not grow (PRAGMA max_page_count: SQLite's SQLITE_FULL, as from a full
 * disk): the write fails with -ENOSPC and says "disk full"; what was acknowledged stays, the
 * failed value is not in memory either; once there is room again the store takes writes, and a
 * reopen finds exactly the acknowledged ones.
 */
START_TEST(test_disk_full)
{
        char *dir = test_tmpdir(), *p = join(dir, "full.db"), big[3002], k[32];
        hyb_store *st = NULL;
        hyb_obj *o = NULL;
        hyb_error e = { 0 };
        int r = 0, acked = 0;
        char *q = NULL;

        memset(big, 'f', sizeof(big));
        big[0] = '\'';
        big[sizeof(big) - 2] = '\'';
        big[sizeof(big) - 1] = '\0';
        ck_assert_int_eq(hyb_store_open(p, NULL, &st, NULL), 0);
        put_ok(st, "/small", "1");
        ck_assert_int_ge(asprintf(&q, "PRAGMA max_page_count = %lld",
                                  (long long)sql_int(p, "PRAGMA page_count") + 4), 0);
        ck_assert_int_eq(sqlite3_exec(st->db.db, q, NULL, NULL, NULL), SQLITE_OK);
        free(q);
        o = obj(big);
        for (acked = 0; acked < 100; acked++) {
                snprintf(k, sizeof(k), "/big/%d", acked);
                if ((r = hyb_store_write_str(st, k, o, 0, &e)) < 0)
                        break;
        }
        ck_assert_int_eq(r, -ENOSPC);
        ck_assert_msg(strstr(e.message, "disk full"), "%s", e.message);
        ck_assert_int_gt(acked, 0);
        /* the failed write is not readable, the acknowledged ones are */
        {
                hyb_obj *v = NULL;
                ck_assert_int_eq(hyb_store_read_str(st, k, &v, NULL), 0);
                ck_assert(hyb_obj_is_noobj(v));
                hyb_obj_unref(v);
        }
        ck_assert(reads_as(st, "/big/0", big, &r));
        ck_assert(reads_as(st, "/small", "1", &r));
        /* space returns */
        ck_assert_int_eq(sqlite3_exec(st->db.db, "PRAGMA max_page_count = 1000000", NULL, NULL,
                                      NULL), SQLITE_OK);
        ck_assert_int_eq(hyb_store_write_str(st, k, o, 0, &e), 0);
        put_ok(st, "/after", "2");
        hyb_store_unref(st);

        st = NULL;
        ck_assert_int_eq(hyb_store_open(p, NULL, &st, NULL), 0);
        for (int i = 0; i <= acked; i++) {
                snprintf(k, sizeof(k), "/big/%d", i);
                ck_assert_msg(reads_as(st, k, big, &r), "%s lost", k);
        }
        ck_assert(reads_as(st, "/after", "2", &r));
        ck_assert(reads_as(st, "/small", "1", &r));
        hyb_store_unref(st);
        ck_assert_int_eq(hyb_store_check(p, NULL, NULL, NULL), 0);
        hyb_obj_unref(o);
        free(p);
        test_rmrf(dir);
        free(dir);
}
END_TEST

/*
 * The same with a real full disk: a 1 MiB tmpfs in a private mount namespace (root, or
 * CAP_SYS_ADMIN; else reported as skipped), filled by a file while the store is open.  Exit
 * status as ro_child.
 */
static int enospc_child(const char *mnt)
{
        char *p = join(mnt, "s.db"), *filler = join(mnt, "filler"), big[3002], k[32];
        char block[4096] = { 0 };
        hyb_store *st = NULL;
        hyb_obj *o;
        hyb_error e = { 0 };
        int fd, r = 0, acked;

        if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
            mount("tmpfs", mnt, "tmpfs", 0, "size=1m") < 0)
                return 77;
        memset(big, 'n', sizeof(big));
        big[0] = '\'';
        big[sizeof(big) - 2] = '\'';
        big[sizeof(big) - 1] = '\0';
        o = obj(big);
        if (hyb_store_open(p, NULL, &st, NULL) != 0 ||
            hyb_store_write_str(st, "/small", o, 0, NULL) != 0)
                return 1;
        fd = open(filler, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        while (fd >= 0 && write(fd, block, sizeof(block)) > 0)
                ;
        if (fd < 0 || errno != ENOSPC)
                return 2;
        close(fd);
        for (acked = 0; acked < 100; acked++) {
                snprintf(k, sizeof(k), "/big/%d", acked);
                if ((r = hyb_store_write_str(st, k, o, 0, &e)) < 0)
                        break;
        }
        if (r != -ENOSPC || !strstr(e.message, "disk full")) {
                fprintf(stderr, "full tmpfs: %s %s\n", hyb_err_name(r), e.message);
                return 3;
        }
        unlink(filler); /* space returns */
        if (hyb_store_write_str(st, k, o, 0, &e) != 0 ||
            hyb_store_write_str(st, "/after", o, 0, &e) != 0) {
                fprintf(stderr, "after space returned: %s\n", e.message);
                return 4;
        }
        hyb_store_unref(st);
        st = NULL;
        if (hyb_store_open(p, NULL, &st, NULL) != 0)
                return 5;
        for (int i = 0; i <= acked; i++) {
                snprintf(k, sizeof(k), "/big/%d", i);
                if (!reads_as(st, k, big, &r))
                        return 6;
        }
        if (!reads_as(st, "/after", big, &r) || !reads_as(st, "/small", big, &r))
                return 7;
        hyb_store_unref(st);
        hyb_obj_unref(o);
        free(p);
        free(filler);
        return 0;
}

START_TEST(test_disk_full_tmpfs)
{
        char *dir = test_tmpdir(), *mnt = join(dir, "m");
        int r;

        ck_assert_int_eq(mkdir(mnt, 0700), 0);
        r = in_child(enospc_child, mnt);
        if (r == 77)
                fprintf(stderr, "store disk full on tmpfs: skipped (cannot mount here)\n");
        else
                ck_assert_int_eq(r, 0);
        free(mnt);
        test_rmrf(dir);
        free(dir);
}
END_TEST

Suite *store_damage_suite(void)
{
        Suite *s = suite_create("store_damage");
        TCase *tc = tcase_create("damage");

        tcase_set_timeout(tc, 300);
        tcase_add_test(tc, test_bitflip);
        tcase_add_test(tc, test_altered_row_is_corrupt);
        tcase_add_test(tc, test_unparseable_row_is_corrupt);
        tcase_add_test(tc, test_upgrade_old_database);
        tcase_add_test(tc, test_lost_row_is_corrupt);
        tcase_add_test(tc, test_damaged_journal_row);
        tcase_add_test(tc, test_quick_check_at_open);
        suite_add_tcase(s, tc);

        tc = tcase_create("access");
        tcase_add_test(tc, test_read_only);
        tcase_add_test(tc, test_disk_full);
        tcase_add_test(tc, test_disk_full_tmpfs);
        suite_add_tcase(s, tc);
        return s;
}
