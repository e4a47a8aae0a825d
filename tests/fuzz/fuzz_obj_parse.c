/* SPDX-License-Identifier: MIT */
/* libFuzzer: hyb_obj_parse, then parse(format(x, EXACT)) == x, and the other printers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hybrid/obj.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        hyb_obj *o = NULL, *back = NULL;
        char *exact = NULL, *again = NULL, *repl = NULL, *json = NULL;
        hyb_error e;

        if (hyb_obj_parse((const char *)data, size, &o, &e) < 0)
                return 0;
        if (hyb_obj_format(o, HYB_FORMAT_EXACT, &exact) < 0 ||
            hyb_obj_format(o, HYB_FORMAT_REPL, &repl) < 0)
                abort();
        if (hyb_obj_parse(exact, strlen(exact), &back, &e) < 0) {
                fprintf(stderr, "EXACT form does not parse: %s\n%s\n", exact, e.message);
                abort();
        }
        if (!hyb_obj_equal(o, back) || hyb_obj_compare(o, back) != 0 ||
            hyb_obj_hash(o) != hyb_obj_hash(back)) {
                fprintf(stderr, "reparse differs: %s\n", exact);
                abort();
        }
        if (hyb_obj_format(back, HYB_FORMAT_EXACT, &again) < 0 || strcmp(exact, again) != 0) {
                fprintf(stderr, "EXACT form not stable: %s / %s\n", exact, again);
                abort();
        }
        (void)hyb_obj_to_json(o, &json, NULL); /* may refuse nan or non-UTF-8, never crash */
        hyb_free(json);
        hyb_free(exact);
        hyb_free(again);
        hyb_free(repl);
        hyb_obj_unref(o);
        hyb_obj_unref(back);
        return 0;
}
