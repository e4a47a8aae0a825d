/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the store's journal row decoder (lib/store/db.c,
 * db_journal_next): another process's journal row is input read off the
 * database file.  The first byte chooses skip (a row of our own: keys only);
 * the rest is the row, decoded record after record as db_poll does.  Each
 * record must move the cursor forward and stay inside the row; a decoded key
 * holds no NUL; a value is given only when asked for.  Seeds:
 * tests/fuzz/corpus/journal/.
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/store-internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        if (size < 1)
                return 0;
        bool skip = data[0] & 1;
        /* A copy of exactly the row, so reading past it is caught. */
        char *row = malloc(size - 1 ? size - 1 : 1);
        if (!row)
                return 0;
        memcpy(row, data + 1, size - 1);
        const char *p = row, *end = row + (size - 1);

        while (p < end) {
                const char *before = p;
                char *key = NULL;
                hyb_obj *value = NULL;
                bool bad = false;
                int r = db_journal_next(&p, end, skip, &key, &value, &bad);
                if (key)
                        assert(strlen(key) < (size_t)(end - before));
                if (r < 0) {
                        assert(r == HYB_E_DATABASE || r == -ENOMEM);
                        assert(!value);
                        free(key);
                        break;
                }
                assert(key && p > before && p <= end);
                assert(!(skip && value));
                assert(!(bad && value));
                hyb_obj_unref(value);
                free(key);
        }
        free(row);
        return 0;
}
