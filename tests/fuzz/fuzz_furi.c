/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the fURI parser: parse, format, re-parse; the round
 * trip must give the same fURI (text, equality, order, hash) and every fURI
 * must match (be within) itself.  The input is also split at its first
 * newline into a fURI and a pattern to exercise matching, order and the
 * builders.  Any violation aborts.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hybrid/furi.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what, const hyb_furi *f)
{
        fprintf(stderr, "fuzz_furi: %s: '%s'\n", what, f ? hyb_furi_get_str(f) : "");
        abort();
}

static hyb_furi *round_trip(const char *text, size_t len)
{
        hyb_furi *f = NULL, *g = NULL;
        hyb_error e;
        int r;

        r = hyb_furi_parse(text, len, NULL, &f, &e);
        if (r < 0) {
                if (e.code != r || e.offset < 0 || (size_t)e.offset > len ||
                    !strstr(e.message, "at offset"))
                        fail("error without code or offset", NULL);
                return NULL;
        }
        r = hyb_furi_parse(hyb_furi_get_str(f), (size_t)-1, NULL, &g, &e);
        if (r < 0) {
                fprintf(stderr, "re-parse: %s\n", e.message);
                fail("canonical text does not parse", f);
        }
        if (strcmp(hyb_furi_get_str(f), hyb_furi_get_str(g)) != 0)
                fail("canonical text is not a fixed point", f);
        if (!hyb_furi_equal(f, g) || hyb_furi_compare(f, g) != 0 ||
            hyb_furi_hash(f) != hyb_furi_hash(g))
                fail("round trip changed the fURI", f);
        if (hyb_furi_get_n_segments(f) != hyb_furi_get_n_segments(g) ||
            hyb_furi_is_branch(f) != hyb_furi_is_branch(g) ||
            hyb_furi_is_absolute(f) != hyb_furi_is_absolute(g) ||
            hyb_furi_get_scope(f) != hyb_furi_get_scope(g))
                fail("round trip changed a part", f);
        for (size_t i = 0; i < hyb_furi_get_n_segments(f); i++) {
                size_t a, b;
                const char *sa = hyb_furi_get_segment(f, i, &a), *sb = hyb_furi_get_segment(g, i, &b);
                if (a != b || memcmp(sa, sb, a) != 0 ||
                    hyb_furi_get_segment_kind(f, i) != hyb_furi_get_segment_kind(g, i))
                        fail("round trip changed a segment", f);
        }
        if (!hyb_furi_match(f, g))
                fail("a fURI does not match itself", f);
        hyb_furi_unref(g);
        return f;
}

static void builders(const hyb_furi *a, const hyb_furi *b)
{
        hyb_furi *r = NULL;
        char *name = NULL;

        if (hyb_furi_extend(a, b, &r, NULL) == 0)
                r = hyb_furi_unref(r);
        if (hyb_furi_resolve(a, b, &r, NULL) == 0)
                r = hyb_furi_unref(r);
        if (hyb_furi_shift(a, 1, &r) == 0)
                r = hyb_furi_unref(r);
        if (hyb_furi_shift(a, -1, &r) == 0)
                r = hyb_furi_unref(r);
        if (hyb_furi_prefix(a, 1, &r) == 0) {
                if (!hyb_furi_is_pattern(a) && hyb_furi_get_n_segments(a) > 1 &&
                    hyb_furi_compare(r, a) >= 0 && !hyb_furi_get_host(a))
                        fail("a prefix does not sort first", a);
                r = hyb_furi_unref(r);
        }
        if (hyb_furi_split_instruction(a, &r, &name) == 1) {
                r = hyb_furi_unref(r);
                free(name);
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        const char *text = (const char *)data, *nl = memchr(data, '\n', size);
        hyb_furi *f, *a, *b;

        f = round_trip(text, size);
        hyb_furi_unref(f);
        if (!nl)
                return 0;
        a = round_trip(text, (size_t)(nl - text));
        b = round_trip(nl + 1, size - (size_t)(nl - text) - 1);
        if (a && b) {
                int c = hyb_furi_compare(a, b), d = hyb_furi_compare(b, a);
                if ((c == 0) != hyb_furi_equal(a, b) || (c < 0) != (d > 0) || (c > 0) != (d < 0))
                        fail("order inconsistent with equal or not antisymmetric", a);
                if (!hyb_furi_is_pattern(b) && !hyb_furi_is_pattern(a) &&
                    hyb_furi_match(a, b) != hyb_furi_equal(a, b))
                        fail("a pattern without wildcards matched a different fURI", a);
                (void)hyb_furi_match(a, b);
                builders(a, b);
        }
        hyb_furi_unref(a);
        hyb_furi_unref(b);
        return 0;
}
