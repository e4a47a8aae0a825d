/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for hyb_furi_parse()'s fast path: each input is parsed by
 * hyb_furi_parse() (fast path first) and by furi_parse_full() (the full grammar
 * only), with the default limits and with small ones, and the two results must be
 * the same (tests/furi/furi-diff.h: every public getter, equal/compare/hash/match,
 * the allocation byte for byte, or the same error).  The input is also split at its
 * newlines so one input tries several texts.  Any difference aborts.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../furi/furi-diff.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const hyb_furi_limits small = { .size = sizeof(hyb_furi_limits), .max_length = 12,
                                       .max_segments = 3, .max_segment = 4 };

static void one(const char *text, size_t len)
{
        char why[400];
        const char *d;
        bool fast;

        d = furi_diff_parse(text, len, NULL, &fast, why, sizeof(why));
        if (!d)
                d = furi_diff_parse(text, len, &small, &fast, why, sizeof(why));
        if (d) {
                fprintf(stderr, "fuzz_furi_fast: '%.*s' (%zu bytes): %s\n", (int)len, text, len, d);
                abort();
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        const char *text = (const char *)data, *end = text + size, *p = text;

        one(text, size);
        while (p < end) {
                const char *nl = memchr(p, '\n', (size_t)(end - p));
                const char *e = nl ? nl : end;

                if (nl || p != text)
                        one(p, (size_t)(e - p));
                p = nl ? nl + 1 : end;
        }
        return 0;
}
