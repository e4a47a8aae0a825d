/* SPDX-License-Identifier: MIT */
/*
 * The identity log (doc/token.md "Identity log"): an append-only SQLite table
 * of enroll / rotate / grant / revoke rows.  Each row's canonical text is
 *
 *   {"at":T,"detail":D,"issuer":KID,"kind":K,"prev":P,"seq":N,"subject":S}
 *
 * (jansson, sorted keys, compact), `hash` is base64url(SHA-256(text)), `prev`
 * the previous row's hash ("" for row 1), and `sig` the issuer's ES256
 * signature of the text.  Reading with a trust store recomputes every row:
 * an edited, inserted, removed or reordered row breaks the seq, the hash, the
 * chain or the signature.
 *
 * Removing the newest rows leaves a shorter chain that still verifies, so each
 * append also writes the head, "SEQ:HASH\n", to a witness file of its own,
 * <path>.head (written to a temporary file, synced, renamed), after the
 * row's commit: a crash between the two leaves a witness one row behind,
 * which still checks.  hyb_token_log_verify compares the log with the witness
 * and with a head the caller remembered.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"
#include "crypto.h"
#include "token-internal.h"

static const char *const kinds[] = {"enroll", "rotate", "grant", "revoke"};

static const char schema[] = "CREATE TABLE IF NOT EXISTS identity_log ("
                             " seq INTEGER PRIMARY KEY, at INTEGER NOT NULL, kind TEXT NOT NULL,"
                             " subject TEXT NOT NULL, detail TEXT NOT NULL, issuer TEXT NOT NULL,"
                             " prev TEXT NOT NULL, hash TEXT NOT NULL, sig TEXT NOT NULL)";

static int db_fail(sqlite3 *db, hyb_error *e, const char *path, const char *what)
{
        return err_set(e, HYB_E_DATABASE, -1, "%s: %s: %s", path, what,
                       db ? sqlite3_errmsg(db) : "out of memory");
}

static bool kind_known(const char *kind)
{
        for (size_t i = 0; i < ELEMENTSOF(kinds); i++)
                if (strcmp(kind, kinds[i]) == 0)
                        return true;
        return false;
}

/* The canonical text of a row (free()), or NULL. */
static char *row_text(const hyb_token_log_row *row)
{
        json_t *j = json_pack("{s:I,s:s,s:s,s:s,s:s,s:I,s:s}", "at", (json_int_t)row->at, "detail",
                              row->detail, "issuer", row->issuer_kid, "kind", row->kind, "prev",
                              row->prev, "seq", (json_int_t)row->seq, "subject", row->subject);
        char *text = j ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS) : NULL;

        json_decref(j);
        return text;
}

static void text_hash(const char *text, char out[44])
{
        uint8_t h[CRYPTO_SHA256_LEN];

        crypto_sha256(text, strlen(text), h);
        b64u_encode_to(h, sizeof h, out);
}

static int open_db(const char *path, bool create, sqlite3 **ret, hyb_error *e)
{
        sqlite3 *db = NULL;
        int flags = create ? SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE : SQLITE_OPEN_READONLY;

        if (sqlite3_open_v2(path, &db, flags, NULL) != SQLITE_OK) {
                int r = db_fail(db, e, path, "cannot open");
                sqlite3_close(db);
                return r;
        }
        sqlite3_busy_timeout(db, 5000);
        if (create && sqlite3_exec(db, schema, NULL, NULL, NULL) != SQLITE_OK) {
                int r = db_fail(db, e, path, "cannot create the table");
                sqlite3_close(db);
                return r;
        }
        *ret = db;
        return 0;
}

/* <path>.head (free()), or NULL. */
static char *witness_path(const char *path)
{
        char *w = NULL;

        return asprintf(&w, "%s.head", path) < 0 ? NULL : w;
}

/* Replaces the witness of the log at path with seq:hash. */
static int witness_write(const char *path, uint64_t seq, const char *hash, hyb_error *e)
{
        char *w = witness_path(path), *tmp = NULL, line[80];
        int fd = -1, n, r = 0;

        if (!w || asprintf(&tmp, "%s.tmp", w) < 0) {
                free(w);
                return -ENOMEM;
        }
        n = snprintf(line, sizeof line, "%" PRIu64 ":%s\n", seq, hash);
        errno = 0;
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
        if (fd < 0)
                r = -errno;
        else if (write(fd, line, (size_t)n) != n)
                r = errno ? -errno : -EIO;
        else if (fsync(fd) < 0)
                r = -errno;
        if (fd >= 0 && close(fd) < 0 && r == 0)
                r = -errno;
        if (r == 0 && rename(tmp, w) < 0)
                r = -errno;
        if (r < 0) {
                if (fd >= 0)
                        unlink(tmp);
                r = err_set(e, r, -1,
                            "%s: row %" PRIu64 " is in the log but its witness %s was not "
                            "updated: %s",
                            path, seq, w, strerror(-r));
        }
        free(tmp);
        free(w);
        return r;
}

HYB_EXPORT int hyb_token_log_append(const char *path, const hyb_key *issuer, const char *kind,
                                    const char *subject, const char *detail, int64_t now,
                                    uint64_t *ret_seq, hyb_error *reterr)
{
        sqlite3 *db = NULL;
        sqlite3_stmt *st = NULL;
        hyb_token_log_row row = {0};
        char prev[44] = "", hash[44], sig_text[TOKEN_SIG_B64 + 1], *text = NULL;
        uint8_t sig[TOKEN_SIG_LEN];
        int r;

        hyb_assert_return(path && issuer && kind && subject, -EINVAL);
        if (!kind_known(kind))
                return err_set(reterr, -EINVAL, -1,
                               "kind '%s' is not enroll, rotate, grant or revoke", kind);
        if (!*subject || strlen(subject) > TOKEN_MAX_STRING ||
            (detail && strlen(detail) > 4 * TOKEN_MAX_STRING))
                return err_set(reterr, -EINVAL, -1, "subject (1 to 256 bytes) or detail too long");
        if (!hyb_key_has_private(issuer))
                return err_set(reterr, -ENOKEY, -1, "the issuer key has no private part");
        r = open_db(path, true, &db, reterr);
        if (r < 0)
                return r;
        if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
                r = db_fail(db, reterr, path, "cannot begin");
                goto out;
        }
        row.seq = 1;
        if (sqlite3_prepare_v2(db, "SELECT seq, hash FROM identity_log ORDER BY seq DESC LIMIT 1",
                               -1, &st, NULL) != SQLITE_OK) {
                r = db_fail(db, reterr, path, "cannot read");
                goto rollback;
        }
        if (sqlite3_step(st) == SQLITE_ROW) {
                const char *h = (const char *)sqlite3_column_text(st, 1);

                row.seq = (uint64_t)sqlite3_column_int64(st, 0) + 1;
                if (!h || strlen(h) != 43) {
                        r = err_set(reterr, HYB_E_CORRUPT, -1, "%s: the last row has no hash",
                                    path);
                        goto rollback;
                }
                memcpy(prev, h, 44);
        }
        sqlite3_finalize(st);
        st = NULL;
        row.at = now ? now : (int64_t)time(NULL);
        row.kind = kind;
        row.subject = subject;
        row.detail = detail ? detail : "";
        row.issuer_kid = hyb_key_get_kid(issuer);
        row.prev = prev;
        text = row_text(&row);
        if (!text) {
                r = -ENOMEM;
                goto rollback;
        }
        text_hash(text, hash);
        r = hyb_key_sign(issuer, text, strlen(text), sig);
        if (r < 0)
                goto rollback;
        b64u_encode_to(sig, sizeof sig, sig_text);
        if (sqlite3_prepare_v2(db,
                               "INSERT INTO identity_log (seq, at, kind, subject, detail, issuer,"
                               " prev, hash, sig) VALUES (?,?,?,?,?,?,?,?,?)",
                               -1, &st, NULL) != SQLITE_OK) {
                r = db_fail(db, reterr, path, "cannot insert");
                goto rollback;
        }
        sqlite3_bind_int64(st, 1, (sqlite3_int64)row.seq);
        sqlite3_bind_int64(st, 2, row.at);
        sqlite3_bind_text(st, 3, row.kind, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, row.subject, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 5, row.detail, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 6, row.issuer_kid, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 7, row.prev, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 8, hash, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 9, sig_text, -1, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_DONE) {
                r = db_fail(db, reterr, path, "cannot insert");
                goto rollback;
        }
        sqlite3_finalize(st);
        st = NULL;
        if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
                r = db_fail(db, reterr, path, "cannot commit");
                goto rollback;
        }
        if (ret_seq)
                *ret_seq = row.seq;
        r = witness_write(path, row.seq, hash, reterr);
        goto out;
rollback:
        sqlite3_finalize(st);
        st = NULL;
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
out:
        free(text);
        sqlite3_close(db);
        return r;
}

static const char *col(sqlite3_stmt *st, int i)
{
        const char *s = (const char *)sqlite3_column_text(st, i);

        return s ? s : "";
}

/* Checks one row against the one before it and the trust store. */
static int row_check(const hyb_token_log_row *row, uint64_t want_seq, const char *want_prev,
                     const char *sig_text, const hyb_token_trust *trust, hyb_error *e)
{
        char *text, hash[44];
        uint8_t sig[TOKEN_SIG_LEN + 1];
        const hyb_key *key;
        const char *issuer_name;
        size_t n = 0;
        int r = 0;

        if (row->seq != want_seq)
                return err_set(e, HYB_E_CORRUPT, -1, "row %llu where row %llu was due",
                               (unsigned long long)row->seq, (unsigned long long)want_seq);
        if (strcmp(row->prev, want_prev) != 0)
                return err_set(e, HYB_E_CORRUPT, -1,
                               "row %llu: prev is not the hash of the row before",
                               (unsigned long long)row->seq);
        if (!kind_known(row->kind))
                return err_set(e, HYB_E_CORRUPT, -1, "row %llu: unknown kind",
                               (unsigned long long)row->seq);
        text = row_text(row);
        if (!text)
                return -ENOMEM;
        text_hash(text, hash);
        if (strcmp(hash, row->hash) != 0) {
                r = err_set(e, HYB_E_CORRUPT, -1, "row %llu: its hash does not match its content",
                            (unsigned long long)row->seq);
                goto out;
        }
        key = token_trust_find_kid(trust, row->issuer_kid, &issuer_name);
        if (!key) {
                r = err_set(e, HYB_E_CORRUPT, -1, "row %llu: signed by an untrusted key %s",
                            (unsigned long long)row->seq, row->issuer_kid);
                goto out;
        }
        if (b64u_decode_to(sig_text, strlen(sig_text), sig, sizeof sig, &n) < 0 ||
            n != TOKEN_SIG_LEN || hyb_key_verify(key, text, strlen(text), sig, TOKEN_SIG_LEN) < 0)
                r = err_set(e, HYB_E_CORRUPT, -1, "row %llu: bad signature",
                            (unsigned long long)row->seq);
out:
        free(text);
        return r;
}

HYB_EXPORT int hyb_token_log_read(const char *path, const hyb_token_trust *trust,
                                  hyb_token_log_each_fn fn, void *userdata, hyb_error *reterr)
{
        sqlite3 *db = NULL;
        sqlite3_stmt *st = NULL;
        char prev[44] = "";
        uint64_t want = 1;
        int r, s;

        hyb_assert_return(path, -EINVAL);
        r = open_db(path, false, &db, reterr);
        if (r < 0)
                return r;
        if (sqlite3_prepare_v2(db,
                               "SELECT seq, at, kind, subject, detail, issuer, prev, hash, sig"
                               " FROM identity_log ORDER BY seq",
                               -1, &st, NULL) != SQLITE_OK) {
                r = db_fail(db, reterr, path, "not an identity log");
                goto out;
        }
        while ((s = sqlite3_step(st)) == SQLITE_ROW) {
                hyb_token_log_row row = {
                        .seq = (uint64_t)sqlite3_column_int64(st, 0),
                        .at = sqlite3_column_int64(st, 1),
                        .kind = col(st, 2),
                        .subject = col(st, 3),
                        .detail = col(st, 4),
                        .issuer_kid = col(st, 5),
                        .prev = col(st, 6),
                        .hash = col(st, 7),
                };

                /* Every column must hold what the row's text says: an integer stored as text
                 * or a real, which the canonical text would hide, is an edit too. */
                if (trust && (sqlite3_column_type(st, 0) != SQLITE_INTEGER ||
                              sqlite3_column_type(st, 1) != SQLITE_INTEGER)) {
                        r = err_set(reterr, HYB_E_CORRUPT, -1,
                                    "row %llu: seq or at is not an integer",
                                    (unsigned long long)row.seq);
                        goto out;
                }
                if (trust) {
                        r = row_check(&row, want, prev, col(st, 8), trust, reterr);
                        if (r < 0)
                                goto out;
                        memcpy(prev, row.hash, 44);
                        want++;
                }
                if (fn && (r = fn(&row, userdata)) != 0)
                        goto out;
        }
        r = s == SQLITE_DONE ? 0 : db_fail(db, reterr, path, "cannot read");
out:
        if (r == HYB_E_CORRUPT)
                err_prefix(reterr, "%s", path);
        sqlite3_finalize(st);
        sqlite3_close(db);
        return r;
}

/* ------------------------------------------------------------ verify */

/* Parses "SEQ:HASH" (a trailing newline allowed).  0 or -EINVAL. */
static int head_parse(const char *s, uint64_t *ret_seq, char ret_hash[44])
{
        char *end;
        unsigned long long v;

        if (*s < '1' || *s > '9')
                return -EINVAL;
        errno = 0;
        v = strtoull(s, &end, 10);
        if (errno || *end != ':' || strlen(end + 1) < 43)
                return -EINVAL;
        for (size_t i = 1; i <= 43; i++)
                if (!token_is_b64url_char((unsigned char)end[i]))
                        return -EINVAL;
        if (end[44] && strcmp(end + 44, "\n") != 0)
                return -EINVAL;
        *ret_seq = v;
        memcpy(ret_hash, end + 1, 43);
        ret_hash[43] = 0;
        return 0;
}

struct head_want {
        uint64_t seq;
        char hash[44];
        const char *from; /* "its witness <file>", "the head given" */
        bool seen, same;
};

struct verify_ctx {
        struct head_want want[2];
        size_t n;
        uint64_t last;
};

static int verify_row(const hyb_token_log_row *row, void *ud)
{
        struct verify_ctx *v = ud;

        v->last = row->seq;
        for (size_t i = 0; i < v->n; i++)
                if (row->seq == v->want[i].seq) {
                        v->want[i].seen = true;
                        v->want[i].same = strcmp(row->hash, v->want[i].hash) == 0;
                }
        return 0;
}

HYB_EXPORT int hyb_token_log_verify(const char *path, const hyb_token_trust *trust,
                                    const char *head, hyb_error *reterr)
{
        struct verify_ctx v = {0};
        char *w = NULL, *from = NULL, buf[128];
        FILE *f;
        int r;

        hyb_assert_return(path && trust, -EINVAL);
        if (head) {
                if (head_parse(head, &v.want[0].seq, v.want[0].hash) < 0)
                        return err_set(reterr, -EINVAL, -1,
                                       "the head '%s' is not SEQ:HASH (a row's seq and its hash)",
                                       head);
                v.want[0].from = "the head given";
                v.n = 1;
        }
        w = witness_path(path);
        if (!w)
                return -ENOMEM;
        f = fopen(w, "re");
        if (!f && errno != ENOENT) {
                r = -errno;
                r = err_set(reterr, HYB_E_CORRUPT, -1, "%s: its witness %s cannot be read: %s",
                            path, w, strerror(-r));
                goto out;
        }
        if (f) {
                size_t n = fread(buf, 1, sizeof buf - 1, f);

                buf[n] = 0;
                fclose(f);
                if (asprintf(&from, "its witness %s", w) < 0) {
                        r = -ENOMEM;
                        goto out;
                }
                if (head_parse(buf, &v.want[v.n].seq, v.want[v.n].hash) < 0) {
                        r = err_set(reterr, HYB_E_CORRUPT, -1, "%s: %s is not SEQ:HASH", path,
                                    from);
                        goto out;
                }
                v.want[v.n++].from = from;
        }
        r = hyb_token_log_read(path, trust, verify_row, &v, reterr);
        for (size_t i = 0; r >= 0 && i < v.n; i++) {
                if (!v.want[i].seen)
                        r = err_set(reterr, HYB_E_CORRUPT, -1,
                                    "%s: the log ends at row %" PRIu64 " but %s names row %" PRIu64
                                    ": its newest rows were removed",
                                    path, v.last, v.want[i].from, v.want[i].seq);
                else if (!v.want[i].same)
                        r = err_set(reterr, HYB_E_CORRUPT, -1,
                                    "%s: row %" PRIu64 " is not the row %s names (another hash): "
                                    "rows were removed and others appended",
                                    path, v.want[i].seq, v.want[i].from);
        }
out:
        free(from);
        free(w);
        return r;
}
