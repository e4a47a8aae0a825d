/* SPDX-License-Identifier: MIT */
/*
 * What makes a stored row trustworthy: its checksum (kv.sum), the sum of a
 * journal row's ops (journal.sum), and reading one kv row back into an obj
 * or saying what is wrong with it.  db.c writes the sums, db.c and check.c
 * read rows with db_row_check.
 */
#include "store-internal.h"

/* FNV-1a: a change of any one byte of equal-length input always changes the result (each step
 * is a bijection of the state), which is what a flipped bit is. */
static uint64_t sum_bytes(uint64_t h, const void *p, size_t n)
{
        const unsigned char *b = p;

        for (size_t i = 0; i < n; i++) {
                h ^= b[i];
                h *= 0x100000001b3ULL;
        }
        return h;
}

/* Little-endian, so a file moved to another host checks the same. */
static uint64_t sum_u64(uint64_t h, uint64_t v)
{
        unsigned char b[8];

        for (int i = 0; i < 8; i++)
                b[i] = (unsigned char)(v >> (8 * i));
        return sum_bytes(h, b, 8);
}

int64_t db_row_sum(const char *key, size_t key_len, int type, int64_t i, double d,
                   const char *text, size_t text_len)
{
        uint64_t h = sum_bytes(0xcbf29ce484222325ULL, key, key_len), bits;
        unsigned char tag[2] = { 0, 0 };

        switch (type) {
        case SQLITE_INTEGER:
                tag[1] = 'i';
                h = sum_u64(sum_bytes(h, tag, 2), (uint64_t)i);
                break;
        case SQLITE_FLOAT:
                tag[1] = 'r';
                memcpy(&bits, &d, 8);
                h = sum_u64(sum_bytes(h, tag, 2), bits);
                break;
        default:
                tag[1] = 't';
                h = sum_bytes(sum_bytes(h, tag, 2), text, text_len);
        }
        return (int64_t)h;
}

int64_t db_journal_sum(const void *ops, size_t len)
{
        return (int64_t)sum_bytes(0xcbf29ce484222325ULL, ops, len);
}

int db_row_check(sqlite3_stmt *s, bool need_sum, hyb_obj **ret, const char **ret_why)
{
        const char *key = (const char *)sqlite3_column_text(s, 0), *t = NULL;
        size_t key_len = (size_t)sqlite3_column_bytes(s, 0), tlen = 0;
        int type = sqlite3_column_type(s, 1);
        int64_t i = 0;
        double dv = 0;

        *ret = NULL;
        *ret_why = NULL;
        if (!key || sqlite3_column_type(s, 0) != SQLITE_TEXT || strlen(key) != key_len) {
                *ret_why = "key is not text";
                return HYB_E_CORRUPT;
        }
        switch (type) {
        case SQLITE_INTEGER:
                i = sqlite3_column_int64(s, 1);
                break;
        case SQLITE_FLOAT:
                dv = sqlite3_column_double(s, 1);
                break;
        case SQLITE_TEXT:
                t = (const char *)sqlite3_column_text(s, 1);
                tlen = (size_t)sqlite3_column_bytes(s, 1);
                if (!t)
                        return -ENOMEM;
                break;
        default:
                *ret_why = type == SQLITE_NULL ? "value is NULL" : "value is a blob";
                return HYB_E_CORRUPT;
        }
        if (sqlite3_column_type(s, 2) == SQLITE_NULL) {
                if (need_sum) {
                        *ret_why = "checksum is missing";
                        return HYB_E_CORRUPT;
                }
        } else if (sqlite3_column_type(s, 2) != SQLITE_INTEGER ||
                   sqlite3_column_int64(s, 2) != db_row_sum(key, key_len, type, i, dv, t, tlen)) {
                *ret_why = "row does not match its checksum";
                return HYB_E_CORRUPT;
        }
        switch (type) {
        case SQLITE_INTEGER:
                return hyb_obj_new_int(i, ret);
        case SQLITE_FLOAT:
                return hyb_obj_new_real(dv, ret);
        default:
                if (hyb_obj_parse(t, tlen, ret, NULL) < 0) {
                        *ret_why = "value cannot be parsed";
                        return HYB_E_CORRUPT;
                }
                return 0;
        }
}
