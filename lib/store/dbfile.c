/* SPDX-License-Identifier: MIT */
/*
 * Opening a store's database file: read-write (created when missing), or,
 * for a file we may read but not write (or in a directory we may not write,
 * so no -wal or -shm file can be made), read-only with SQLite's immutable=1:
 * no locks, no WAL.  immutable=1 ignores a -wal file, so a read-only file
 * beside a non-empty one (commits not yet in the main file) is refused.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store-internal.h"

/* Percent-encodes what a URI filename may not hold as is; an absolute path, so "file://" never
 * starts an authority. */
static char *file_uri(const char *path, const char *query)
{
        _cleanup_free_ char *abs = realpath(path, NULL);
        char *u, *q;

        if (!abs)
                return NULL;
        u = malloc(strlen("file:") + 3 * strlen(abs) + strlen(query) + 1);
        if (!u)
                return NULL;
        q = stpcpy(u, "file:");
        for (const char *p = abs; *p; p++) {
                if (*p == '%' || *p == '?' || *p == '#')
                        q += sprintf(q, "%%%02X", (unsigned char)*p);
                else
                        *q++ = *p;
        }
        strcpy(q, query);
        return u;
}

/* Whether path is an existing file we may read but not write (or whose directory we may not
 * write, so no -wal or -shm file can be made next to it). */
static bool read_only_file(const char *path)
{
        _cleanup_free_ char *dir = strdup(path);
        char *slash;

        if (access(path, F_OK) < 0 || access(path, R_OK) < 0)
                return false;
        if (access(path, W_OK) < 0)
                return true;
        if (!dir)
                return false;
        slash = strrchr(dir, '/');
        if (!slash)
                return access(".", W_OK | X_OK) < 0;
        if (slash == dir)
                slash[1] = '\0';
        else
                *slash = '\0';
        return access(dir, W_OK | X_OK) < 0;
}

int db_connect(const char *path, bool check_only, sqlite3 **ret, bool *ret_readonly, hyb_error *e)
{
        _cleanup_free_ char *wal = NULL, *uri = NULL;
        struct stat sb;
        int flags = SQLITE_OPEN_NOMUTEX, rc;

        *ret = NULL;
        *ret_readonly = read_only_file(path);
        if (*ret_readonly) {
                if (asprintf(&wal, "%s-wal", path) < 0)
                        return -ENOMEM;
                if (stat(wal, &sb) == 0 && sb.st_size > 0)
                        return err_set(e, HYB_E_READ_ONLY, -1,
                                       "%s: read-only, and its -wal file holds commits not yet in "
                                       "the database: open it once with write access first",
                                       path);
                uri = file_uri(path, "?immutable=1");
                if (!uri) {
                        int err = errno ? errno : ENOMEM;
                        return err_set(e, -err, -1, "%s: %s", path, strerror(err));
                }
                flags |= SQLITE_OPEN_READONLY | SQLITE_OPEN_URI;
        } else
                /* check_only: not created; still read-write, so that closing removes the
                 * -wal and -shm files as a store's close does */
                flags |= check_only ? SQLITE_OPEN_READWRITE
                                    : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
        rc = sqlite3_open_v2(uri ? uri : path, ret, flags, NULL);
        if (rc != SQLITE_OK) {
                /* cannot open (a directory, a missing parent...): not a read-only refusal */
                int code = db_code(rc) == HYB_E_READ_ONLY ? HYB_E_DATABASE : db_code(rc);
                err_set(e, code, -1, "%s: %s", path,
                        *ret ? sqlite3_errmsg(*ret) : "out of memory");
                sqlite3_close(*ret);
                *ret = NULL;
                return code;
        }
        return 0;
}
