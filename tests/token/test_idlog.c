/* SPDX-License-Identifier: MIT */
/*
 * The identity log's head (doc/token.md "Identity log"): each append writes
 * the witness <log>.head; hyb_token_log_verify finds the newest rows removed
 * (the witness or a remembered head past the end), removed and replaced by
 * others (the row at the head's seq has another hash), and takes a witness
 * one row behind the log (a crash between the commit and the witness).
 */
#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hybrid/token.h"
#include "suites.h"
#include "testutil.h"
#include "token_test.h"

static hyb_key *issuer, *other;
static hyb_token_trust *trust;
static char *dir, db[512], witness[600];

static void setup(void)
{
        ck_assert_int_eq(hyb_key_generate(&issuer), 0);
        ck_assert_int_eq(hyb_key_generate(&other), 0);
        trust = token_test_trust(issuer, other);
        dir = test_tmpdir();
        snprintf(db, sizeof db, "%s/id.db", dir);
        snprintf(witness, sizeof witness, "%s.head", db);
}

static void teardown(void)
{
        hyb_token_trust_unref(trust);
        hyb_key_unref(issuer);
        hyb_key_unref(other);
        test_rmrf(dir);
        free(dir);
}

static void add(int n)
{
        hyb_error e = {0};

        for (int i = 0; i < n; i++)
                ck_assert_msg(hyb_token_log_append(db, issuer, "grant", "device-1", "x", 0, NULL,
                                                   &e) == 0,
                              "%s", e.message);
}

static void sql(const char *stmt)
{
        sqlite3 *h;

        ck_assert_int_eq(sqlite3_open(db, &h), SQLITE_OK);
        ck_assert_int_eq(sqlite3_exec(h, stmt, NULL, NULL, NULL), SQLITE_OK);
        sqlite3_close(h);
}

/* "SEQ:HASH" of row seq, read from the log. */
struct find {
        uint64_t seq;
        char head[80];
};

static int find_row(const hyb_token_log_row *row, void *ud)
{
        struct find *f = ud;

        if (row->seq == f->seq)
                snprintf(f->head, sizeof f->head, "%" PRIu64 ":%s", row->seq, row->hash);
        return 0;
}

static const char *head_of(uint64_t seq)
{
        static struct find f;

        f.seq = seq;
        f.head[0] = 0;
        ck_assert_int_eq(hyb_token_log_read(db, NULL, find_row, &f, NULL), 0);
        ck_assert_str_ne(f.head, "");
        return f.head;
}

START_TEST(test_witness_written)
{
        char *text;
        hyb_error e = {0};

        add(3);
        text = test_read_file(witness, NULL);
        ck_assert_ptr_nonnull(text);
        /* the head of row 3, as the log itself gives it, and a newline */
        ck_assert_uint_eq(strlen(text), strlen(head_of(3)) + 1);
        ck_assert_int_eq(strncmp(text, head_of(3), strlen(head_of(3))), 0);
        ck_assert_int_eq(text[strlen(text) - 1], '\n');
        free(text);
        ck_assert_msg(hyb_token_log_verify(db, trust, NULL, &e) == 0, "%s", e.message);
        ck_assert_msg(hyb_token_log_verify(db, trust, head_of(2), &e) == 0, "%s", e.message);
}
END_TEST

START_TEST(test_newest_removed)
{
        hyb_error e = {0};

        add(4);
        sql("DELETE FROM identity_log WHERE seq >= 3");
        /* the chain alone still verifies: that is what the witness is for */
        ck_assert_int_eq(hyb_token_log_read(db, trust, NULL, NULL, NULL), 0);
        ck_assert_int_eq(hyb_token_log_verify(db, trust, NULL, &e), HYB_E_CORRUPT);
        ck_assert_msg(strstr(e.message, "ends at row 2") && strstr(e.message, "names row 4"), "%s",
                      e.message);
}
END_TEST

START_TEST(test_removed_and_replaced)
{
        hyb_error e = {0};
        char h3[80];

        add(3);
        snprintf(h3, sizeof h3, "%s", head_of(3));
        sql("DELETE FROM identity_log WHERE seq = 3");
        /* an append after the removal makes another row 3 and a new witness */
        ck_assert_int_eq(hyb_token_log_append(db, issuer, "revoke", "device-1", "y", 0, NULL, &e),
                         0);
        ck_assert_msg(hyb_token_log_verify(db, trust, NULL, &e) == 0, "%s", e.message);
        /* ... which only a head remembered elsewhere tells apart */
        ck_assert_int_eq(hyb_token_log_verify(db, trust, h3, &e), HYB_E_CORRUPT);
        ck_assert_msg(strstr(e.message, "row 3 is not the row the head given names"), "%s",
                      e.message);
        /* a remembered head past the end */
        add(1);
        sql("DELETE FROM identity_log WHERE seq = 4");
        ck_assert_int_eq(hyb_token_log_verify(db, trust, NULL, &e), HYB_E_CORRUPT);
}
END_TEST

START_TEST(test_witness_behind_and_missing)
{
        hyb_error e = {0};
        char h2[80], line[100];
        FILE *f;

        add(2);
        snprintf(h2, sizeof h2, "%s", head_of(2));
        add(1);
        /* a crash between row 3's commit and its witness leaves the witness at row 2 */
        f = fopen(witness, "w");
        ck_assert_ptr_nonnull(f);
        fprintf(f, "%s\n", h2);
        fclose(f);
        ck_assert_msg(hyb_token_log_verify(db, trust, NULL, &e) == 0, "%s", e.message);
        /* no witness: the chain is checked, the end is not (and a given head still is) */
        ck_assert_int_eq(remove(witness), 0);
        ck_assert_msg(hyb_token_log_verify(db, trust, NULL, &e) == 0, "%s", e.message);
        snprintf(line, sizeof line, "4:%s", strchr(h2, ':') + 1);
        ck_assert_int_eq(hyb_token_log_verify(db, trust, line, &e), HYB_E_CORRUPT);
        /* a witness that is not SEQ:HASH */
        f = fopen(witness, "w");
        ck_assert_ptr_nonnull(f);
        fputs("3:short\n", f);
        fclose(f);
        ck_assert_int_eq(hyb_token_log_verify(db, trust, NULL, &e), HYB_E_CORRUPT);
        ck_assert_msg(strstr(e.message, "is not SEQ:HASH"), "%s", e.message);
}
END_TEST

START_TEST(test_bad_head)
{
        static const char *const bad[] = {
                "",
                "3",
                "3:",
                "0:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                "03:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                "-1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                "3:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                "3:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA+A",
                "99999999999999999999999:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        };
        hyb_error e = {0};

        add(1);
        for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
                ck_assert_msg(hyb_token_log_verify(db, trust, bad[i], &e) == -EINVAL, "'%s'",
                              bad[i]);
        ck_assert_int_eq(hyb_token_log_verify(db, NULL, NULL, &e), -EINVAL);
}
END_TEST

Suite *token_idlog_suite(void)
{
        Suite *s = suite_create("token_idlog");
        TCase *tc = tcase_create("head");

        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_add_test(tc, test_witness_written);
        tcase_add_test(tc, test_newest_removed);
        tcase_add_test(tc, test_removed_and_replaced);
        tcase_add_test(tc, test_witness_behind_and_missing);
        tcase_add_test(tc, test_bad_head);
        suite_add_tcase(s, tc);
        return s;
}
