/* SPDX-License-Identifier: MIT */
/*
 * hyb_store_check: is a store database sound?  SQLite's integrity check of
 * the whole file (b-tree structure, free list, page accounting), then ours:
 * every kv row against its checksum, the obj grammar and the fURI grammar,
 * and every journal row against its sum (db.c describes the layout).  The
 * file is never changed: no upgrade, no handle row.
 */
#include <stdio.h>
#include <unistd.h>

#include "store-internal.h"

typedef struct check_ctx {
        sqlite3 *db;
        hyb_store_check_fn fn;
        void *userdata;
        int n;
} check_ctx;

static void problem(check_ctx *c, const char *furi, const char *what)
{
        c->n++;
        if (c->fn)
                c->fn(furi, what, c->userdata);
}

/* The first column of the first row of sql as an integer; -1 with *ret_rc on failure. */
static int64_t query_int(sqlite3 *db, const char *sql, int *ret_rc)
{
        sqlite3_stmt *s = NULL;
        int64_t v = -1;

        *ret_rc = sqlite3_prepare_v2(db, sql, -1, &s, NULL);
        if (*ret_rc == SQLITE_OK) {
                *ret_rc = sqlite3_step(s);
                if (*ret_rc == SQLITE_ROW) {
                        v = sqlite3_column_int64(s, 0);
                        *ret_rc = SQLITE_OK;
                }
        }
        sqlite3_finalize(s);
        return v;
}

static void check_sqlite(check_ctx *c)
{
        sqlite3_stmt *s = NULL;
        int rc;

        if (sqlite3_prepare_v2(c->db, "PRAGMA integrity_check(100)", -1, &s, NULL) != SQLITE_OK) {
                problem(c, NULL, sqlite3_errmsg(c->db));
                return;
        }
        while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
                const char *t = (const char *)sqlite3_column_text(s, 0);
                if (t && strcmp(t, "ok") != 0)
                        problem(c, NULL, t);
        }
        if (rc != SQLITE_DONE)
                problem(c, NULL, sqlite3_errmsg(c->db));
        sqlite3_finalize(s);
}

static void check_rows(check_ctx *c, bool has_sum, bool need_sum)
{
        sqlite3_stmt *s = NULL;
        int rc;

        if (sqlite3_prepare_v2(c->db, has_sum ? "SELECT furi, value, sum FROM kv"
                                              : "SELECT furi, value, NULL FROM kv",
                               -1, &s, NULL) != SQLITE_OK) {
                problem(c, NULL, sqlite3_errmsg(c->db));
                return;
        }
        while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
                const char *key = (const char *)sqlite3_column_text(s, 0), *why = NULL;
                hyb_obj *v = NULL;
                hyb_furi *f = NULL;
                int r = db_row_check(s, need_sum, &v, &why);

                hyb_obj_unref(v);
                if (r == 0 && hyb_furi_parse(key, (size_t)-1, NULL, &f, NULL) < 0) {
                        r = HYB_E_CORRUPT;
                        why = "key is not a fURI";
                }
                hyb_furi_unref(f);
                if (r == HYB_E_CORRUPT)
                        problem(c, key ? key : "", why);
                else if (r < 0)
                        problem(c, key ? key : "", hyb_strerror(r));
        }
        if (rc != SQLITE_DONE) {
                char msg[160];
                snprintf(msg, sizeof(msg), "reading the rows: %s", sqlite3_errmsg(c->db));
                problem(c, NULL, msg);
        }
        sqlite3_finalize(s);
}

static void check_journal(check_ctx *c)
{
        sqlite3_stmt *s = NULL;
        int rc;

        if (sqlite3_prepare_v2(c->db, "SELECT seq, ops, sum FROM journal", -1, &s, NULL) !=
            SQLITE_OK)
                return; /* a journal of an earlier layout: replaced when next opened */
        while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
                const void *p = sqlite3_column_blob(s, 1);
                size_t n = (size_t)sqlite3_column_bytes(s, 1);
                char msg[96];

                if (sqlite3_column_type(s, 2) == SQLITE_INTEGER &&
                    sqlite3_column_int64(s, 2) == db_journal_sum(p, n))
                        continue;
                snprintf(msg, sizeof(msg), "journal row %lld does not match its sum",
                         (long long)sqlite3_column_int64(s, 0));
                problem(c, NULL, msg);
        }
        if (rc != SQLITE_DONE) {
                char msg[160];
                snprintf(msg, sizeof(msg), "reading the journal: %s", sqlite3_errmsg(c->db));
                problem(c, NULL, msg);
        }
        sqlite3_finalize(s);
}

HYB_EXPORT int hyb_store_check(const char *path, hyb_store_check_fn fn, void *userdata,
                               hyb_error *reterr)
{
        check_ctx c = { .fn = fn, .userdata = userdata };
        int64_t app_id, n_kv, has_sum, version;
        bool readonly;
        int r, rc;

        hyb_assert_return(path, -EINVAL);
        if (access(path, F_OK) < 0) {
                int err = errno;
                return err_set(reterr, -err, -1, "%s: %s", path, strerror(err));
        }
        r = db_connect(path, true, &c.db, &readonly, reterr);
        if (r < 0)
                return r;
        app_id = query_int(c.db, "PRAGMA application_id", &rc);
        if (rc == SQLITE_NOTADB) {
                r = err_set(reterr, HYB_E_DATABASE, -1,
                            "%s: not an SQLite database (or its first page is damaged)", path);
                sqlite3_close(c.db);
                return r;
        }
        if (rc == SQLITE_CORRUPT) {
                /* the header itself: nothing more can be read */
                problem(&c, NULL, sqlite3_errmsg(c.db));
                sqlite3_close(c.db);
                return c.n;
        }
        if (rc != SQLITE_OK) {
                r = err_set(reterr, db_code(rc), -1, "%s: %s", path, sqlite3_errmsg(c.db));
                sqlite3_close(c.db);
                return r;
        }
        n_kv = query_int(c.db, "SELECT count(*) FROM sqlite_schema WHERE name = 'kv'", &rc);
        if (rc == SQLITE_OK && (app_id != STORE_APP_ID || n_kv != 1)) {
                sqlite3_close(c.db);
                return err_set(reterr, HYB_E_DATABASE, -1, "%s: not a hybrid store database",
                               path);
        }
        check_sqlite(&c);
        has_sum = query_int(c.db, "SELECT count(*) FROM pragma_table_info('kv')"
                                  " WHERE name = 'sum'", &rc);
        version = query_int(c.db, "PRAGMA user_version", &rc);
        check_rows(&c, has_sum > 0, version >= SUMS_VERSION);
        check_journal(&c);
        sqlite3_close(c.db);
        return c.n;
}
