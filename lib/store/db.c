/* SPDX-License-Identifier: MIT */
/*
 * SQLite persistence of a store: WAL, one row per stored key, and a change
 * journal other processes poll to see this handle's writes.
 *
 *   kv(furi TEXT PRIMARY KEY, value NOT NULL, sum INTEGER)      WITHOUT ROWID
 *       furi  = canonical fURI text; value = an INTEGER or REAL for a plain
 *       int or real (bound natively: exact, and no text formatting on the
 *       write path), else the EXACT text form of the obj.  The column has no
 *       affinity, so SQLite keeps the type bound.  (A database made before,
 *       with `value TEXT`, is written in text only: see d->native.)
 *       sum = row_sum() of furi, the value's storage class and its bytes: a
 *       flipped bit in a row is reported (HYB_E_CORRUPT), never returned.
 *       Databases made before sums existed get the column, and every row its
 *       sum, when first opened for writing; `PRAGMA user_version` 1 then says
 *       every row has one (a row without is damage).
 *   journal(seq INTEGER PRIMARY KEY, origin, ops BLOB, sum INTEGER)
 *       one row per commit, written in the same transaction: every write
 *       of the commit in order, as  key NUL tag payload  with tag 'd'
 *       (delete, no payload), 'i' / 'r' (8 bytes, an int64 / a double in
 *       host order: readers share the WAL, so the host) or 't' (EXACT text,
 *       NUL-terminated).  One insert per commit instead of one per write,
 *       and no formatting beyond what kv stores.  Trimmed to about
 *       journal_max rows, never the newest, so seq (max + 1) only grows
 *       without AUTOINCREMENT's sqlite_sequence page.  A reader that finds
 *       rows trimmed before it saw them, or a row whose ops do not match its
 *       sum (damage), resyncs from kv.
 *   handles(origin INTEGER PRIMARY KEY, pid)
 *       every open handle, registered (in a write transaction) before it
 *       loads kv.  A commit writes its journal row only when another handle
 *       is registered: one that registers later loads kv after our commit,
 *       so it misses nothing, and a handle alone on its file (the common
 *       case) writes one page per commit, as a plain upsert.  The list is
 *       read again inside the write transaction only when data_version shows
 *       another connection committed.  Rows of processes that no longer
 *       exist (a crash) are removed when a handle opens; a handle that finds
 *       its own row gone (a pid namespace where kill(pid, 0) said ESRCH)
 *       registers again and resyncs from kv, so it misses nothing.
 *
 * Every open runs `PRAGMA quick_check` before it trusts the file (b-tree
 * structure and page accounting: a page that lost cells loses rows without
 * changing the others, which no row checksum can see).  It reads what the
 * load reads anyway: about 2% of the open's time.  A count of rows kept by
 * every commit would catch the same at load, but costs a page per commit.
 *
 * A file we may not write (or in a directory we may not write, where no -wal
 * or -shm file can be made) opens read-only with `immutable=1` (dbfile.c): no
 * locks, no WAL, no handle row, no journal polls; writes fail with
 * HYB_E_READ_ONLY.  The sums are computed and checked in rowsum.c.
 *
 * `PRAGMA data_version` changes only when another connection commits, so a
 * poll with nothing new costs one tiny statement.  Every call here takes
 * d->lock: the connection is used by the commit leader and the poller.
 * Transaction statements are prepared once (sqlite3_exec would parse them
 * on every commit).
 */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/random.h>
#include <unistd.h>

#include "store-internal.h"


static const char schema[] =
        "CREATE TABLE IF NOT EXISTS kv(furi TEXT PRIMARY KEY NOT NULL, value NOT NULL,"
        " sum INTEGER) WITHOUT ROWID;"
        "CREATE TABLE IF NOT EXISTS journal(seq INTEGER PRIMARY KEY,"
        " origin INTEGER NOT NULL, ops BLOB NOT NULL, sum INTEGER);"
        "CREATE TABLE IF NOT EXISTS handles(origin INTEGER PRIMARY KEY, pid INTEGER NOT NULL);";

/* A journal of an earlier layout is only a change feed: replace it. */
static const char old_journal[] =
        "SELECT (SELECT count(*) FROM pragma_table_info('journal')) > 0 AND"
        " (SELECT count(*) FROM pragma_table_info('journal') WHERE name = 'sum') = 0";


int db_code(int rc)
{
        switch (rc & 0xff) {
        case SQLITE_FULL:
                return -ENOSPC;
        case SQLITE_CORRUPT:
                return HYB_E_CORRUPT;
        case SQLITE_READONLY:
                return HYB_E_READ_ONLY;
        case SQLITE_NOMEM:
                return -ENOMEM;
        default:
                return HYB_E_DATABASE;
        }
}

/* The error of the connection's last failure, named by its cause. */
static int db_err(store_db *d, hyb_error *e, const char *what)
{
        int code;

        if (!d->db)
                return err_set(e, -ENOMEM, -1, "%s: out of memory", what);
        code = db_code(sqlite3_errcode(d->db));
        if (code == -ENOSPC)
                return err_set(e, code, -1, "%s: disk full (%s)", what, sqlite3_errmsg(d->db));
        if (code == HYB_E_CORRUPT)
                return err_set(e, code, -1, "%s: database corrupt (%s)", what,
                               sqlite3_errmsg(d->db));
        return err_set(e, code, -1, "%s: %s", what, sqlite3_errmsg(d->db));
}

static int64_t value_sum(const char *key, const db_value *v)
{
        return db_row_sum(key, strlen(key), v->type, v->i, v->d, v->text,
                          v->type == SQLITE_TEXT ? strlen(v->text) : 0);
}

static int prep(store_db *d, const char *sql, sqlite3_stmt **ret, hyb_error *e)
{
        if (sqlite3_prepare_v3(d->db, sql, -1, SQLITE_PREPARE_PERSISTENT, ret, NULL) !=
            SQLITE_OK)
                return db_err(d, e, "prepare");
        return 0;
}

static int exec(store_db *d, const char *sql, hyb_error *e)
{
        char *msg = NULL;
        int r;

        if (sqlite3_exec(d->db, sql, NULL, NULL, &msg) == SQLITE_OK)
                return 0;
        r = err_set(e, HYB_E_DATABASE, -1, "%s", msg ? msg : sqlite3_errmsg(d->db));
        sqlite3_free(msg);
        return r;
}

static int64_t scalar(store_db *d, sqlite3_stmt *s)
{
        int64_t v = 0;

        if (sqlite3_step(s) == SQLITE_ROW)
                v = sqlite3_column_int64(s, 0);
        sqlite3_reset(s);
        return v;
}

static int step_done(sqlite3_stmt *s)
{
        int r = sqlite3_step(s);

        sqlite3_reset(s);
        sqlite3_clear_bindings(s);
        return r == SQLITE_DONE ? 0 : r;
}

/* Runs a statement without rows (BEGIN, COMMIT, ...): SQLITE_DONE or the error. */
static int run(sqlite3_stmt *s)
{
        int r = sqlite3_step(s);

        sqlite3_reset(s);
        return r;
}

void db_value_done(db_value *v)
{
        if (v->type == SQLITE_TEXT)
                hyb_free(v->text);
        v->text = NULL;
        v->type = SQLITE_NULL;
}

static void bind_value(sqlite3_stmt *s, int col, const db_value *v)
{
        switch (v->type) {
        case SQLITE_INTEGER:
                sqlite3_bind_int64(s, col, v->i);
                break;
        case SQLITE_FLOAT:
                sqlite3_bind_double(s, col, v->d);
                break;
        case SQLITE_TEXT:
                sqlite3_bind_text(s, col, v->text, -1, SQLITE_STATIC);
                break;
        default:
                sqlite3_bind_null(s, col);
        }
}

/* SQLite's quick check, before the file is trusted. */
static int quick_check(store_db *d, const char *path, hyb_error *e)
{
        sqlite3_stmt *s = NULL;
        int r = prep(d, "PRAGMA quick_check(1)", &s, e);
        const char *t;

        if (r < 0)
                return r;
        if (sqlite3_step(s) != SQLITE_ROW)
                r = db_err(d, e, "quick check");
        else if ((t = (const char *)sqlite3_column_text(s, 0)) && strcmp(t, "ok") != 0)
                r = err_set(e, HYB_E_CORRUPT, -1,
                            "%s: corrupt (SQLite's quick check: %.120s; see 'hybrid store "
                            "check')", path, t);
        sqlite3_finalize(s);
        return r;
}

/* Drops the rows of processes that are gone, then adds ours: before the caller loads kv. */
static int register_handle(store_db *d, const char *path, hyb_error *e)
{
        sqlite3_stmt *s = NULL, *del = NULL;
        int r;

        if (run(d->begin_w) != SQLITE_DONE)
                return db_err(d, e, path);
        r = prep(d, "SELECT origin, pid FROM handles", &s, e);
        if (r == 0)
                r = prep(d, "DELETE FROM handles WHERE origin = ?1", &del, e);
        while (r == 0 && sqlite3_step(s) == SQLITE_ROW) {
                pid_t pid = (pid_t)sqlite3_column_int64(s, 1);
                if (pid > 0 && kill(pid, 0) < 0 && errno == ESRCH) {
                        sqlite3_bind_int64(del, 1, sqlite3_column_int64(s, 0));
                        step_done(del);
                }
        }
        sqlite3_finalize(s);
        sqlite3_finalize(del);
        if (r == 0 && (r = prep(d, "INSERT OR REPLACE INTO handles(origin, pid) VALUES(?1, ?2)",
                                &s, e)) == 0) {
                sqlite3_bind_int64(s, 1, d->origin);
                sqlite3_bind_int64(s, 2, getpid());
                if (sqlite3_step(s) != SQLITE_DONE)
                        r = db_err(d, e, path);
                sqlite3_finalize(s);
        }
        if (r == 0 && run(d->commit) != SQLITE_DONE)
                r = db_err(d, e, path);
        if (r < 0)
                run(d->rollback);
        d->others_version = -1;
        return r;
}

static int64_t pragma_int(store_db *d, const char *sql, hyb_error *e, int *ret_r)
{
        sqlite3_stmt *s = NULL;
        int64_t v = -1;

        *ret_r = prep(d, sql, &s, e);
        if (*ret_r < 0)
                return -1;
        if (sqlite3_step(s) == SQLITE_ROW)
                v = sqlite3_column_int64(s, 0);
        else
                *ret_r = db_err(d, e, sql);
        sqlite3_finalize(s);
        return v;
}

/* Gives the kv rows of a database made before sums their sum (verifying each first: a row
 * that cannot be read is not blessed), then marks the file as complete. */
static int upgrade_sums(store_db *d, hyb_error *e)
{
        sqlite3_stmt *s = NULL, *u = NULL;
        int r, rc;

        if (run(d->begin_w) != SQLITE_DONE)
                return db_err(d, e, "upgrade");
        r = prep(d, "SELECT furi, value, sum FROM kv WHERE sum IS NULL", &s, e);
        if (r == 0)
                r = prep(d, "UPDATE kv SET sum = ?2 WHERE furi = ?1", &u, e);
        while (r == 0 && (rc = sqlite3_step(s)) == SQLITE_ROW) {
                const char *why = NULL, *key = (const char *)sqlite3_column_text(s, 0);
                hyb_obj *v = NULL;
                int type = sqlite3_column_type(s, 1);

                r = db_row_check(s, false, &v, &why);
                hyb_obj_unref(v);
                if (r < 0) {
                        if (why)
                                err_set(e, r, -1, "corrupt row at '%.120s': %s", key ? key : "",
                                        why);
                        break;
                }
                sqlite3_bind_text(u, 1, key, -1, SQLITE_STATIC);
                sqlite3_bind_int64(u, 2, db_row_sum(key, strlen(key), type,
                                                    sqlite3_column_int64(s, 1),
                                                    sqlite3_column_double(s, 1),
                                                    (const char *)sqlite3_column_text(s, 1),
                                                    (size_t)sqlite3_column_bytes(s, 1)));
                if (step_done(u) != 0)
                        r = db_err(d, e, "upgrade");
        }
        if (r == 0 && rc != SQLITE_DONE)
                r = db_err(d, e, "upgrade");
        sqlite3_finalize(s);
        sqlite3_finalize(u);
        if (r == 0)
                r = exec(d, "PRAGMA user_version=1" /* SUMS_VERSION */, e);
        if (r == 0 && run(d->commit) != SQLITE_DONE)
                r = db_err(d, e, "upgrade");
        if (r < 0)
                run(d->rollback);
        return r;
}

int db_open(store_db *d, const char *path, const hyb_store_options *o, hyb_error *e)
{
        sqlite3_stmt *s = NULL;
        int64_t app_id, n;
        int r;

        memset(d, 0, sizeof(*d));
        pthread_mutex_init(&d->lock, NULL);
        d->path = strdup(path);
        if (!d->path)
                return -ENOMEM;
        d->journal_max = o->journal_max ? o->journal_max : 4096;
        if (getrandom(&d->origin, sizeof(d->origin), 0) != sizeof(d->origin))
                d->origin = (int64_t)getpid() << 20 ^ (int64_t)hyb_now_usec();
        if (d->origin == 0)
                d->origin = 1;

        /* NOMUTEX: d->lock serialises every use of the connection. */
        if ((r = db_connect(path, false, &d->db, &d->readonly, e)) < 0)
                return r;
        sqlite3_busy_timeout(d->db, o->busy_timeout_ms ? (int)o->busy_timeout_ms : 5000);
        app_id = pragma_int(d, "PRAGMA application_id", e, &r);
        if (r < 0) {
                err_prefix(e, "%s", path);
                return r;
        }
        if (app_id != 0 && app_id != STORE_APP_ID)
                return err_set(e, HYB_E_DATABASE, -1,
                               "%s: not a hybrid store database (application_id %lld)", path,
                               (long long)app_id);
        n = pragma_int(d, "SELECT count(*) FROM pragma_table_info('kv') WHERE name = 'sum'", e,
                       &r);
        if (r < 0) {
                err_prefix(e, "%s", path);
                return r;
        }
        d->has_sum = n > 0;
        if (d->readonly) {
                if (app_id != STORE_APP_ID)
                        return err_set(e, HYB_E_DATABASE, -1,
                                       "%s: not a hybrid store database (read-only, so it cannot "
                                       "be made one)", path);
        } else if ((r = exec(d, "PRAGMA journal_mode=WAL", e)) < 0 ||
                   (r = exec(d, o->durability == HYB_DURABILITY_FULL ? "PRAGMA synchronous=FULL"
                                                                     : "PRAGMA synchronous=NORMAL",
                             e)) < 0 ||
                   (r = exec(d, "PRAGMA application_id=1215914545", e)) < 0 ||
                   (r = prep(d, old_journal, &s, e)) < 0) {
                err_prefix(e, "%s", path);
                return r;
        } else {
                bool old = sqlite3_step(s) == SQLITE_ROW && sqlite3_column_int64(s, 0) > 0;
                sqlite3_finalize(s);
                if ((old && (r = exec(d, "DROP TABLE journal", e)) < 0) ||
                    (r = exec(d, schema, e)) < 0) {
                        err_prefix(e, "%s", path);
                        return r;
                }
                if (!d->has_sum) {
                        /* a new file has it from the schema just made; an old one gains it */
                        n = pragma_int(d, "SELECT count(*) FROM pragma_table_info('kv')"
                                          " WHERE name = 'sum'", e, &r);
                        if (r < 0)
                                return r;
                        if (n == 0 &&
                            (r = exec(d, "ALTER TABLE kv ADD COLUMN sum INTEGER", e)) < 0) {
                                err_prefix(e, "%s", path);
                                return r;
                        }
                        d->has_sum = true;
                }
        }
        if ((r = prep(d, "INSERT INTO kv(furi, value, sum) VALUES(?1, ?2, ?3) ON CONFLICT(furi)"
                         " DO UPDATE SET value = excluded.value, sum = excluded.sum",
                      &d->upsert, e)) < 0 && !d->readonly)
                return r;
        if ((r = prep(d, "DELETE FROM kv WHERE furi = ?1", &d->del, e)) < 0 ||
            (r = prep(d, "INSERT INTO journal(origin, ops, sum) VALUES(?1, ?2, ?3)", &d->jadd,
                      e)) < 0 ||
            (r = prep(d, "SELECT seq, origin, ops, sum FROM journal WHERE seq > ?1 ORDER BY seq",
                      &d->jsince, e)) < 0 ||
            (r = prep(d, "SELECT count(*) FROM handles WHERE origin != ?1", &d->others, e)) < 0 ||
            (r = prep(d, "SELECT count(*) FROM handles WHERE origin = ?1", &d->self, e)) < 0 ||
            (r = prep(d, "SELECT coalesce(min(seq), 0) FROM journal", &d->jmin, e)) < 0 ||
            (r = prep(d, "SELECT coalesce(max(seq), 0) FROM journal", &d->jmax, e)) < 0 ||
            (r = prep(d, "DELETE FROM journal WHERE seq <= ?1", &d->jtrim, e)) < 0 ||
            (r = prep(d, "PRAGMA data_version", &d->dver, e)) < 0 ||
            (r = prep(d, d->has_sum ? "SELECT furi, value, sum FROM kv"
                                    : "SELECT furi, value, NULL FROM kv", &d->all, e)) < 0 ||
            (r = prep(d, "BEGIN IMMEDIATE", &d->begin_w, e)) < 0 ||
            (r = prep(d, "BEGIN", &d->begin_r, e)) < 0 ||
            (r = prep(d, "COMMIT", &d->commit, e)) < 0 ||
            (r = prep(d, "ROLLBACK", &d->rollback, e)) < 0 ||
            (r = prep(d, "SELECT type FROM pragma_table_info('kv') WHERE name = 'value'", &s,
                      e)) < 0) {
                if (d->readonly)
                        return err_set(e, HYB_E_DATABASE, -1,
                                       "%s: not a hybrid store database (%s)", path,
                                       sqlite3_errmsg(d->db));
                err_prefix(e, "%s", path);
                return r;
        }
        if (sqlite3_step(s) == SQLITE_ROW) {
                const char *type = (const char *)sqlite3_column_text(s, 0);
                d->native = !type || !*type;
        }
        sqlite3_finalize(s);
        d->sums_complete = pragma_int(d, "PRAGMA user_version", e, &r) >= SUMS_VERSION;
        if (r < 0)
                return r;
        d->last_seq = scalar(d, d->jmax);
        d->data_version = scalar(d, d->dver);
        if ((r = quick_check(d, path, e)) < 0 || d->readonly)
                return r;
        if ((r = register_handle(d, path, e)) < 0)
                return r;
        if (!d->sums_complete) {
                if ((r = upgrade_sums(d, e)) < 0) {
                        err_prefix(e, "%s", path);
                        return r;
                }
                d->sums_complete = true;
        }
        return 0;
}

void db_close(store_db *d)
{
        sqlite3_stmt **stmts[] = { &d->upsert, &d->del,    &d->jadd,   &d->jsince,
                                   &d->jmin,   &d->jmax,   &d->jtrim,  &d->dver,
                                   &d->all,    &d->begin_w, &d->begin_r, &d->commit,
                                   &d->rollback, &d->others, &d->self };
        sqlite3_stmt *s = NULL;

        /* unregister: writers stop journalling for us (and the shutdown is clean) */
        if (d->db && d->others && !d->readonly &&
            sqlite3_prepare_v2(d->db, "DELETE FROM handles WHERE origin = ?1", -1, &s, NULL) ==
                    SQLITE_OK) {
                sqlite3_bind_int64(s, 1, d->origin);
                sqlite3_step(s);
                sqlite3_finalize(s);
        }

        for (size_t i = 0; i < ELEMENTSOF(stmts); i++) {
                sqlite3_finalize(*stmts[i]);
                *stmts[i] = NULL;
        }
        if (d->db)
                sqlite3_close(d->db);
        d->db = NULL;
        free(d->path);
        d->path = NULL;
        pthread_mutex_destroy(&d->lock);
}

int db_load(store_db *d, int (*fn)(const char *key, hyb_obj *value, void *ud), void *ud,
            hyb_error *e)
{
        int r = 0, s;

        pthread_mutex_lock(&d->lock);
        /* One read transaction: the rows and the journal position agree. */
        run(d->begin_r);
        while ((s = sqlite3_step(d->all)) == SQLITE_ROW) {
                const char *key = (const char *)sqlite3_column_text(d->all, 0), *why = NULL;
                hyb_obj *v = NULL;

                r = db_row_check(d->all, d->sums_complete, &v, &why);
                if (r == 0)
                        r = fn(key, v, ud);
                hyb_obj_unref(v);
                if (r == HYB_E_CORRUPT)
                        err_set(e, r, -1, "%s: corrupt row at '%.120s': %s (see 'hybrid store "
                                "check')", d->path, key ? key : "",
                                why ? why : "key is not a fURI");
                if (r < 0)
                        break;
        }
        if (r == 0 && s != SQLITE_DONE)
                r = db_err(d, e, d->path);
        sqlite3_reset(d->all);
        if (r == 0)
                d->last_seq = scalar(d, d->jmax);
        run(d->commit);
        pthread_mutex_unlock(&d->lock);
        return r;
}

/* The journal row of a commit (see the top of the file). */
static int journal_blob(db_op *ops, char **ret, size_t *ret_len)
{
        _cleanup_free_ char *b = NULL;
        size_t len = 0, alloc = 0;

        for (db_op *op = ops; op; op = op->next) {
                size_t kl = strlen(op->key), vl;
                const db_value *v = &op->value;
                int r;

                vl = v->type == SQLITE_TEXT ? strlen(v->text) + 1 : v->type == SQLITE_NULL ? 0 : 8;
                if ((r = grow_array((void **)&b, &alloc, len + kl + 2 + vl, 1)) < 0)
                        return r;
                memcpy(b + len, op->key, kl + 1);
                len += kl + 1;
                switch (v->type) {
                case SQLITE_INTEGER:
                        b[len++] = 'i';
                        memcpy(b + len, &v->i, 8);
                        break;
                case SQLITE_FLOAT:
                        b[len++] = 'r';
                        memcpy(b + len, &v->d, 8);
                        break;
                case SQLITE_TEXT:
                        b[len++] = 't';
                        memcpy(b + len, v->text, vl);
                        break;
                default:
                        b[len++] = 'd';
                }
                len += vl;
        }
        *ret = TAKE_PTR(b);
        *ret_len = len;
        return 0;
}

/* Decodes one record of a journal row at *p (< end): its key, and its value unless skip. */
int db_journal_next(const char **p, const char *end, bool skip, char **ret_key,
                    hyb_obj **ret_value, bool *ret_bad)
{
        const char *k = *p, *q = memchr(k, '\0', (size_t)(end - k));
        int64_t i;
        double dv;
        int r = 0;

        *ret_value = NULL;
        *ret_bad = false;
        if (!q || q + 1 >= end)
                return HYB_E_DATABASE;
        *ret_key = strndup(k, (size_t)(q - k));
        if (!*ret_key)
                return -ENOMEM;
        switch (q[1]) {
        case 'd':
                *p = q + 2;
                return 0;
        case 'i':
        case 'r':
                if (end - (q + 2) < 8)
                        return HYB_E_DATABASE;
                *p = q + 10;
                if (skip)
                        return 0;
                if (q[1] == 'i') {
                        memcpy(&i, q + 2, 8);
                        return hyb_obj_new_int(i, ret_value);
                }
                memcpy(&dv, q + 2, 8);
                return hyb_obj_new_real(dv, ret_value);
        case 't':
                k = q + 2;
                q = memchr(k, '\0', (size_t)(end - k));
                if (!q)
                        return HYB_E_DATABASE;
                *p = q + 1;
                if (!skip && hyb_obj_parse(k, (size_t)(q - k), ret_value, NULL) < 0)
                        *ret_bad = true;
                return r;
        default:
                return HYB_E_DATABASE;
        }
}

int db_commit(store_db *d, db_op *ops, hyb_error *e)
{
        _cleanup_free_ char *blob = NULL;
        size_t len = 0;
        int64_t seq;
        int r = 0;

        if (!ops)
                return 0;
        if (d->readonly)
                return err_set(e, HYB_E_READ_ONLY, -1, "%s is read-only", d->path);
        pthread_mutex_lock(&d->lock);
        /* IMMEDIATE: take the write lock now, so busy_timeout covers the wait. */
        if (run(d->begin_w) != SQLITE_DONE) {
                r = db_err(d, e, "begin");
                goto out;
        }
        for (db_op *op = ops; op && r == 0; op = op->next) {
                if (op->value.type != SQLITE_NULL) {
                        sqlite3_bind_text(d->upsert, 1, op->key, -1, SQLITE_STATIC);
                        bind_value(d->upsert, 2, &op->value);
                        sqlite3_bind_int64(d->upsert, 3, value_sum(op->key, &op->value));
                        r = step_done(d->upsert);
                } else {
                        sqlite3_bind_text(d->del, 1, op->key, -1, SQLITE_STATIC);
                        r = step_done(d->del);
                }
        }
        if (r == 0) {
                /* Does anyone else read the journal?  Only another connection's commit can
                 * change the answer, and data_version tells (we hold the write lock). */
                int64_t ver = scalar(d, d->dver);
                if (ver != d->others_version) {
                        sqlite3_bind_int64(d->others, 1, d->origin);
                        d->n_others = scalar(d, d->others);
                        d->others_version = ver;
                }
        }
        if (r == 0 && d->n_others == 0) {
                /* alone: nobody to tell (a handle that opens later loads kv after this) */
                if (run(d->commit) != SQLITE_DONE) {
                        r = db_err(d, e, "commit");
                        run(d->rollback);
                }
                goto out;
        }
        if (r == 0 && (r = journal_blob(ops, &blob, &len)) < 0) {
                run(d->rollback);
                goto out;
        }
        if (r == 0) {
                sqlite3_bind_int64(d->jadd, 1, d->origin);
                sqlite3_bind_blob(d->jadd, 2, blob, (int)len, SQLITE_STATIC);
                sqlite3_bind_int64(d->jadd, 3, db_journal_sum(blob, len));
                r = step_done(d->jadd);
        }
        if (r) {
                r = db_err(d, e, "write");
                run(d->rollback);
                goto out;
        }
        seq = sqlite3_last_insert_rowid(d->db);
        /* Trim the journal as it grows: keep about journal_max rows. */
        if (++d->commits % 16 == 0 || d->journal_max < 64) {
                int64_t max = seq;
                int64_t min = scalar(d, d->jmin);
                if (max - min + 1 > (int64_t)(d->journal_max + d->journal_max / 4)) {
                        sqlite3_bind_int64(d->jtrim, 1, max - (int64_t)d->journal_max);
                        step_done(d->jtrim);
                }
        }
        if (run(d->commit) != SQLITE_DONE) {
                r = db_err(d, e, "commit");
                run(d->rollback);
                goto out;
        }
        /* Our row follows the last one we saw, so nobody else wrote in between (every commit
         * adds a journal row, seq is max + 1 and the newest row is never trimmed): no need to
         * read it back.  Otherwise the next poll reads it with the others'. */
        if (seq == d->last_seq + 1)
                d->last_seq = seq;
out:
        pthread_mutex_unlock(&d->lock);
        return r;
}

void db_changes_free(db_change *c, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                free(c[i].key);
                hyb_obj_unref(c[i].value);
        }
        free(c);
}

int db_poll(store_db *d, bool wait, db_change **ret, size_t *n, bool *ret_gap)
{
        db_change *c = NULL;
        size_t cnt = 0, alloc = 0;
        int64_t ver, min;
        int s, r = 0;

        *ret = NULL;
        *n = 0;
        *ret_gap = false;
        if (d->readonly)
                return 0; /* immutable: nobody else writes it */
        if (!wait) {
                if (pthread_mutex_trylock(&d->lock) != 0)
                        return -EBUSY;
        } else
                pthread_mutex_lock(&d->lock);
        ver = scalar(d, d->dver);
        if (ver == d->data_version)
                goto out;
        run(d->begin_r);
        sqlite3_bind_int64(d->self, 1, d->origin);
        if (scalar(d, d->self) == 0) {
                /* Our row is gone (another process took us for dead): writers may have skipped
                 * their journal rows.  Register again, then the caller resyncs from kv. */
                run(d->commit);
                if (register_handle(d, "store", NULL) == 0) {
                        *ret_gap = true;
                        d->last_seq = scalar(d, d->jmax);
                        d->data_version = scalar(d, d->dver);
                }
                goto out;
        }
        min = scalar(d, d->jmin);
        if (min > d->last_seq + 1) {
                /* Rows we never saw were trimmed: the caller resyncs from kv. */
                *ret_gap = true;
                d->last_seq = scalar(d, d->jmax);
                d->data_version = ver;
                run(d->commit);
                goto out;
        }
        sqlite3_bind_int64(d->jsince, 1, d->last_seq);
        while (r == 0 && (s = sqlite3_step(d->jsince)) == SQLITE_ROW) {
                int64_t seq = sqlite3_column_int64(d->jsince, 0);
                bool own = sqlite3_column_int64(d->jsince, 1) == d->origin;
                const char *p = sqlite3_column_blob(d->jsince, 2);
                const char *end = p + sqlite3_column_bytes(d->jsince, 2);

                if (sqlite3_column_type(d->jsince, 3) != SQLITE_INTEGER ||
                    sqlite3_column_int64(d->jsince, 3) != db_journal_sum(p, (size_t)(end - p))) {
                        /* a damaged row: what it says cannot be trusted; kv can */
                        *ret_gap = true;
                        d->last_seq = seq;
                        continue;
                }

                while (p && p < end) {
                        db_change *x;
                        if (grow_array((void **)&c, &alloc, cnt + 1, sizeof(*c)) < 0) {
                                r = -ENOMEM;
                                break;
                        }
                        x = &c[cnt++];
                        *x = (db_change){ .seq = seq, .own = own };
                        r = db_journal_next(&p, end, own, &x->key, &x->value, &x->bad);
                        if (x->bad)
                                *ret_gap = true;
                        if (r == HYB_E_DATABASE) {
                                /* a malformed row: skip the rest of it, resync from kv */
                                if (!x->key)
                                        cnt--;
                                x->bad = true;
                                *ret_gap = true;
                                r = 0;
                                break;
                        }
                        if (r < 0)
                                break;
                }
                if (r == 0)
                        d->last_seq = seq;
        }
        sqlite3_reset(d->jsince);
        run(d->commit);
        /* A step that failed (SQLITE_BUSY, I/O) read only part of the journal: keep the old
         * data_version so the next poll reads on from last_seq instead of waiting for
         * another commit to notice. */
        if (r == 0 && s == SQLITE_DONE)
                d->data_version = ver;
out:
        pthread_mutex_unlock(&d->lock);
        if (r < 0) {
                db_changes_free(c, cnt);
                return r;
        }
        *ret = c;
        *n = cnt;
        return 0;
}

int db_journal_rows(store_db *d, int64_t *ret)
{
        int64_t min, max;

        pthread_mutex_lock(&d->lock);
        min = scalar(d, d->jmin);
        max = scalar(d, d->jmax);
        pthread_mutex_unlock(&d->lock);
        *ret = max ? max - min + 1 : 0;
        return 0;
}
