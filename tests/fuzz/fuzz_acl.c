/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for globs and access lists (lib/bus/acl.c).  The input is
 * `list NUL value`: the list is compiled; an accepted list's normalised text
 * must compile again to the same text and give the same answer for the value.
 * The same two strings are also matched as a glob and a subject: a glob without
 * wildcards must match exactly its case-insensitive equals.  Seeds:
 * tests/fuzz/corpus/acl/.
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "bus/acl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        const char *sep = memchr(data, '\0', size);
        size_t tlen = sep ? (size_t)(sep - (const char *)data) : size;
        char *text = strndup((const char *)data, tlen);
        const char *value = sep ? sep + 1 : "";
        size_t vlen = sep ? size - tlen - 1 : 0;
        bus_acl *acl = NULL, *again = NULL;
        hyb_error err;

        if (!text)
                return 0;
        hyb_error_clear(&err);
        if (bus_acl_compile(text, &acl, &err) == 0) {
                const char *norm = bus_acl_text(acl);
                assert(norm && bus_acl_compile(norm, &again, NULL) == 0);
                assert(strcmp(norm, bus_acl_text(again)) == 0);
                bool a = bus_acl_allows(acl, value, vlen, "host1", "org.fuzz.owner");
                bool b = bus_acl_allows(again, value, vlen, "host1", "org.fuzz.owner");
                assert(a == b);
                /* The default list allows everything. */
                if (tlen == 0)
                        assert(a);
        } else {
                assert(err.message[0] != 0);
        }
        bus_acl_free(acl);
        bus_acl_free(again);

        bool m = bus_glob_match(text, tlen, value, vlen);
        if (bus_glob_is_literal(text, tlen))
                assert(m == (tlen == vlen && strncasecmp(text, value, tlen) == 0));
        /* `*` matches anything; a glob matches itself when it has no `?` or `*`. */
        assert(bus_glob_match("*", 1, value, vlen));
        free(text);
        return 0;
}
