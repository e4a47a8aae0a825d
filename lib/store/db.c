/* SPDX-License-Identifier: MIT */
/*
 * SQLite persistence of a store: WAL, one row per stored key, and a change
 * journal other processes poll to see this handle's writes.
 *
 *   kv(furi TEXT PRIMARY KEY, value TEXT NOT NULL)      WITHOUT ROWID
 *       furi  = canonical fURI text, value = EXACT text form of the obj
 *   journal(seq INTEGER PRIMARY KEY AUTOINCREMENT, origin, furi, value)
 *       one row per upsert/delete (value NULL), written in the same
 *       transaction; trimmed to about journal_max rows.  A reader that
 *       finds rows trimmed before it saw them resyncs from kv.
 *
 * `PRAGMA data_version` changes only when another connection commits, so a
 * poll with nothing new costs one tiny statement.  Every call here takes
 * d->lock: the connection is used by the commit leader and the poller.
 */
#include <fcntl.h>
#include <sys/random.h>
#include <unistd.h>

#include "store-internal.h"

#define STORE_APP_ID 0x48796231 /* "Hyb1" */

static const char schema[] =
        "CREATE TABLE IF NOT EXISTS kv(furi TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL)"
        " WITHOUT ROWID;"
        "CREATE TABLE IF NOT EXISTS journal(seq INTEGER PRIMARY KEY AUTOINCREMENT,"
        " origin INTEGER NOT NULL, furi TEXT NOT NULL, value TEXT);";

static int db_err(store_db *d, hyb_error *e, const char *what)
{
        return err_set(e, HYB_E_DATABASE, -1, "%s: %s", what,
                       d->db ? sqlite3_errmsg(d->db) : "out of memory");
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

int db_open(store_db *d, const char *path, const hyb_store_options *o, hyb_error *e)
{
        sqlite3_stmt *s = NULL;
        int64_t app_id;
        int r;

        memset(d, 0, sizeof(*d));
        pthread_mutex_init(&d->lock, NULL);
        d->journal_max = o->journal_max ? o->journal_max : 4096;
        if (getrandom(&d->origin, sizeof(d->origin), 0) != sizeof(d->origin))
                d->origin = (int64_t)getpid() << 20 ^ (int64_t)store_now_usec();
        if (d->origin == 0)
                d->origin = 1;

        /* NOMUTEX: d->lock serialises every use of the connection. */
        if (sqlite3_open_v2(path, &d->db,
                            SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                            NULL) != SQLITE_OK)
                return db_err(d, e, path);
        sqlite3_busy_timeout(d->db, o->busy_timeout_ms ? (int)o->busy_timeout_ms : 5000);
        r = prep(d, "PRAGMA application_id", &s, e);
        if (r < 0)
                return err_set(e, HYB_E_DATABASE, -1, "%s: %s", path, sqlite3_errmsg(d->db));
        app_id = sqlite3_step(s) == SQLITE_ROW ? sqlite3_column_int64(s, 0) : -1;
        sqlite3_finalize(s);
        if (app_id < 0)
                return err_set(e, HYB_E_DATABASE, -1, "%s: %s", path, sqlite3_errmsg(d->db));
        if (app_id != 0 && app_id != STORE_APP_ID)
                return err_set(e, HYB_E_DATABASE, -1,
                               "%s: not a hybrid store database (application_id %lld)", path,
                               (long long)app_id);
        if ((r = exec(d, "PRAGMA journal_mode=WAL", e)) < 0 ||
            (r = exec(d, o->durability == HYB_DURABILITY_FULL ? "PRAGMA synchronous=FULL"
                                                              : "PRAGMA synchronous=NORMAL",
                      e)) < 0 ||
            (r = exec(d, "PRAGMA application_id=1215914545", e)) < 0 ||
            (r = exec(d, schema, e)) < 0) {
                err_prefix(e, "%s", path);
                return r;
        }
        if ((r = prep(d, "INSERT INTO kv(furi, value) VALUES(?1, ?2) ON CONFLICT(furi) DO "
                         "UPDATE SET value = excluded.value", &d->upsert, e)) < 0 ||
            (r = prep(d, "DELETE FROM kv WHERE furi = ?1", &d->del, e)) < 0 ||
            (r = prep(d, "INSERT INTO journal(origin, furi, value) VALUES(?1, ?2, ?3)",
                      &d->jadd, e)) < 0 ||
            (r = prep(d, "SELECT seq, origin, furi, value FROM journal WHERE seq > ?1 "
                         "ORDER BY seq", &d->jsince, e)) < 0 ||
            (r = prep(d, "SELECT coalesce(min(seq), 0) FROM journal", &d->jmin, e)) < 0 ||
            (r = prep(d, "SELECT coalesce(max(seq), 0) FROM journal", &d->jmax, e)) < 0 ||
            (r = prep(d, "DELETE FROM journal WHERE seq <= ?1", &d->jtrim, e)) < 0 ||
            (r = prep(d, "PRAGMA data_version", &d->dver, e)) < 0 ||
            (r = prep(d, "SELECT furi, value FROM kv", &d->all, e)) < 0)
                return r;
        d->last_seq = scalar(d, d->jmax);
        d->data_version = scalar(d, d->dver);
        return 0;
}

void db_close(store_db *d)
{
        sqlite3_stmt **stmts[] = { &d->upsert, &d->del,  &d->jadd, &d->jsince, &d->jmin,
                                   &d->jmax,   &d->jtrim, &d->dver, &d->all };

        for (size_t i = 0; i < ELEMENTSOF(stmts); i++) {
                sqlite3_finalize(*stmts[i]);
                *stmts[i] = NULL;
        }
        if (d->db)
                sqlite3_close(d->db);
        d->db = NULL;
        pthread_mutex_destroy(&d->lock);
}

int db_load(store_db *d, int (*fn)(const char *key, const char *value, void *ud), void *ud,
            hyb_error *e)
{
        int r = 0, s;

        pthread_mutex_lock(&d->lock);
        /* One read transaction: the rows and the journal position agree. */
        sqlite3_exec(d->db, "BEGIN", NULL, NULL, NULL);
        while ((s = sqlite3_step(d->all)) == SQLITE_ROW) {
                r = fn((const char *)sqlite3_column_text(d->all, 0),
                       (const char *)sqlite3_column_text(d->all, 1), ud);
                if (r < 0)
                        break;
        }
        if (r == 0 && s != SQLITE_DONE)
                r = db_err(d, e, "load");
        sqlite3_reset(d->all);
        if (r == 0)
                d->last_seq = scalar(d, d->jmax);
        sqlite3_exec(d->db, "COMMIT", NULL, NULL, NULL);
        pthread_mutex_unlock(&d->lock);
        return r;
}

static int step_done(sqlite3_stmt *s)
{
        int r = sqlite3_step(s);

        sqlite3_reset(s);
        sqlite3_clear_bindings(s);
        return r == SQLITE_DONE ? 0 : r;
}

int db_commit(store_db *d, db_op *ops, hyb_error *e)
{
        int r = 0;

        pthread_mutex_lock(&d->lock);
        /* IMMEDIATE: take the write lock now, so busy_timeout covers the wait. */
        if (sqlite3_exec(d->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
                r = db_err(d, e, "begin");
                goto out;
        }
        for (db_op *op = ops; op; op = op->next) {
                if (op->value) {
                        sqlite3_bind_text(d->upsert, 1, op->key, -1, SQLITE_STATIC);
                        sqlite3_bind_text(d->upsert, 2, op->value, -1, SQLITE_STATIC);
                        r = step_done(d->upsert);
                } else {
                        sqlite3_bind_text(d->del, 1, op->key, -1, SQLITE_STATIC);
                        r = step_done(d->del);
                }
                if (r == 0) {
                        sqlite3_bind_int64(d->jadd, 1, d->origin);
                        sqlite3_bind_text(d->jadd, 2, op->key, -1, SQLITE_STATIC);
                        if (op->value)
                                sqlite3_bind_text(d->jadd, 3, op->value, -1, SQLITE_STATIC);
                        else
                                sqlite3_bind_null(d->jadd, 3);
                        r = step_done(d->jadd);
                }
                if (r) {
                        r = db_err(d, e, "write");
                        sqlite3_exec(d->db, "ROLLBACK", NULL, NULL, NULL);
                        goto out;
                }
        }
        /* Trim the journal as it grows: keep about journal_max rows. */
        if (++d->commits % 16 == 0 || d->journal_max < 64) {
                int64_t max = sqlite3_last_insert_rowid(d->db);
                int64_t min = scalar(d, d->jmin);
                if (max - min + 1 > (int64_t)(d->journal_max + d->journal_max / 4)) {
                        sqlite3_bind_int64(d->jtrim, 1, max - (int64_t)d->journal_max);
                        step_done(d->jtrim);
                }
        }
        if (sqlite3_exec(d->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
                r = db_err(d, e, "commit");
                sqlite3_exec(d->db, "ROLLBACK", NULL, NULL, NULL);
                goto out;
        }
        /* Nobody else committed since our last poll: the new rows are all ours. */
        if (scalar(d, d->dver) == d->data_version)
                d->last_seq = sqlite3_last_insert_rowid(d->db);
out:
        pthread_mutex_unlock(&d->lock);
        return r;
}

void db_changes_free(db_change *c, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                free(c[i].key);
                free(c[i].value);
        }
        free(c);
}

int db_poll(store_db *d, db_change **ret, size_t *n, bool *ret_gap)
{
        db_change *c = NULL;
        size_t cnt = 0, alloc = 0;
        int64_t ver, min;
        int s, r = 0;

        *ret = NULL;
        *n = 0;
        *ret_gap = false;
        pthread_mutex_lock(&d->lock);
        ver = scalar(d, d->dver);
        if (ver == d->data_version)
                goto out;
        sqlite3_exec(d->db, "BEGIN", NULL, NULL, NULL);
        min = scalar(d, d->jmin);
        if (min > d->last_seq + 1) {
                /* Rows we never saw were trimmed: the caller resyncs from kv. */
                *ret_gap = true;
                d->last_seq = scalar(d, d->jmax);
                d->data_version = ver;
                sqlite3_exec(d->db, "COMMIT", NULL, NULL, NULL);
                goto out;
        }
        sqlite3_bind_int64(d->jsince, 1, d->last_seq);
        while ((s = sqlite3_step(d->jsince)) == SQLITE_ROW) {
                const char *v = (const char *)sqlite3_column_text(d->jsince, 3);
                if (grow_array((void **)&c, &alloc, cnt + 1, sizeof(*c)) < 0) {
                        r = -ENOMEM;
                        break;
                }
                c[cnt].seq = sqlite3_column_int64(d->jsince, 0);
                c[cnt].own = sqlite3_column_int64(d->jsince, 1) == d->origin;
                c[cnt].key = strdup((const char *)sqlite3_column_text(d->jsince, 2));
                c[cnt].value = v ? strdup(v) : NULL;
                cnt++;
                if (!c[cnt - 1].key || (v && !c[cnt - 1].value)) {
                        r = -ENOMEM;
                        break;
                }
                d->last_seq = c[cnt - 1].seq;
        }
        sqlite3_reset(d->jsince);
        sqlite3_exec(d->db, "COMMIT", NULL, NULL, NULL);
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
